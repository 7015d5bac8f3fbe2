// Command whet fine-tunes and trains large language models. Run `whet help`
// for its subcommands.
package main

import (
	"os"

	"github.com/whet-ai/whet/cli"
)

func main() {
	os.Exit(cli.Main(&cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, os.Args[1:]))
}
