// Package cli holds whet's commands. cmd/whet runs them as subcommands
// (`whet info`, and later `whet train`, `whet merge`, ...); the standalone
// binaries under cmd/ run one command each through the same code.
package cli

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/spf13/pflag"
)

// Command is one subcommand.
type Command struct {
	Name  string // as typed: "info"
	Short string // one line for the command list
	// Run runs the command with its arguments (after the name). It returns
	// an error for the user; usage errors wrap ErrUsage.
	Run func(env *Env, args []string) error
}

// Env is what a command reads and writes: its streams, so that tests can run
// commands in process.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// ErrUsage marks an error in how a command was called.
var ErrUsage = errors.New("usage")

// commands is the registry of subcommands, filled by init functions of the
// files that define them.
var commands = map[string]*Command{}

func register(c *Command) { commands[c.Name] = c }

// Lookup returns the named command, or nil.
func Lookup(name string) *Command { return commands[name] }

// Main runs whet with os.Args[1:]-style arguments and returns the process
// exit status: 0 on success, 1 on failure, 2 on a usage error.
func Main(env *Env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c := Lookup(args[0])
	if c == nil {
		fmt.Fprintf(env.Stderr, "whet: unknown command %q\n\n", args[0])
		usage(env.Stderr)
		return 2
	}
	return RunCommand(env, c, args[1:])
}

// RunCommand runs one command and turns its error into an exit status.
func RunCommand(env *Env, c *Command, args []string) int {
	err := c.Run(env, args)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, pflag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(env.Stderr, "whet %s: %v\n", c.Name, err)
		return 2
	default:
		fmt.Fprintf(env.Stderr, "whet %s: %v\n", c.Name, err)
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "whet fine-tunes and trains large language models.")
	fmt.Fprintln(w, "\nUsage: whet COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].Short)
	}
	fmt.Fprintln(w, "\nRun 'whet COMMAND --help' for a command's flags.")
}

// newFlags returns a flag set for a command that reports errors as usage
// errors and prints help to the command's stderr.
func newFlags(env *Env, name, synopsis string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: whet %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, marking failures as usage errors.
func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return nil
}
