// Command merge is `whet merge` as a standalone binary: it folds a PEFT
// LoRA adapter into its base model and writes a Hugging Face model
// directory. Run `merge --help` for its flags.
package main

import (
	"os"

	"github.com/whet-ai/whet/cli"
)

func main() {
	env := &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	os.Exit(cli.RunCommand(env, cli.Lookup("merge"), os.Args[1:]))
}
