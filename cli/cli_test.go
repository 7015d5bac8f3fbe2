package cli

import (
	"bytes"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(&Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}, args)
	return code, out.String(), errb.String()
}

func TestInfo(t *testing.T) {
	t.Setenv("WHET_BLAS", "go")
	t.Setenv("WHET_NUM_THREADS", "2")
	code, out, errs := run(t, "info", "--bench", "--size", "65")
	if code != 0 {
		t.Fatalf("whet info --bench: exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{"backend: cpu: pure-Go GEMM", "2 threads", "gemm 65x65x65: median", "checked against float64"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage: whet COMMAND"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"info", "--size", "0"}, 2, "--size 0, want 1 to 16384"},
		{[]string{"info", "--nope"}, 2, "unknown flag: --nope"},
		{[]string{"info", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"help"}, 0, "info"},
		{[]string{"info", "--help"}, 0, "--bench"},
	} {
		code, _, errs := run(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("whet %v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	t.Setenv("WHET_BLAS", "mkl")
	if code, _, errs := run(t, "info"); code != 1 || !strings.Contains(errs, "WHET_BLAS") {
		t.Errorf("WHET_BLAS=mkl: exit %d, stderr %q", code, errs)
	}
}
