package data

// The Alpaca prompt, as Stanford Alpaca trained with it: a preamble, the
// instruction, the input when there is one, and the response header. The
// model is trained on the output that follows.
const (
	alpacaPreamble      = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
	alpacaPreambleInput = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request."
	alpacaInstruction   = "\n\n### Instruction:\n"
	alpacaInput         = "\n\n### Input:\n"
	alpacaResponse      = "\n\n### Response:\n"
)

// AlpacaPrompt returns the prompt of an alpaca record written with
// Stanford Alpaca's template:
//
//	Below is an instruction that describes a task[, paired with an input
//	that provides further context]. Write a response that appropriately
//	completes the request.
//
//	### Instruction:
//	{instruction}
//
//	[### Input:
//	{input}
//
//	]### Response:
//
// A record's system field, when not empty, replaces the preamble. An
// input of only white space counts as none.
func AlpacaPrompt(system, instruction, input string) string {
	hasInput := false
	for _, c := range input {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			hasInput = true
			break
		}
	}
	pre := alpacaPreamble
	if hasInput {
		pre = alpacaPreambleInput
	}
	if system != "" {
		pre = system
	}
	s := pre + alpacaInstruction + instruction
	if hasInput {
		s += alpacaInput + input
	}
	return s + alpacaResponse
}
