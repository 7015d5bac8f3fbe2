// Command train is `whet train` as a standalone binary: it fine-tunes a
// model as a YAML recipe says. Run `train --help` for its flags.
package main

import (
	"os"

	"github.com/whet-ai/whet/cli"
)

func main() {
	env := &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	os.Exit(cli.RunCommand(env, cli.Lookup("train"), os.Args[1:]))
}
