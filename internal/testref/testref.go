// Package testref decides what a test does when an independent reference
// it compares against is missing from the machine: the Node binding of the
// Hugging Face tokenizers library, real tokenizer.json files, @huggingface/hub,
// a FastTrackML server. On a developer's machine the test skips, saying
// what to install; in CI, where .ci/run installs every reference and sets
// WHET_REQUIRE_TEST_REFS=1, a missing reference is a failure, so that a
// check can never pass there by not running.
package testref

import (
	"fmt"
	"os"
	"testing"
)

// Env is the variable that makes a missing reference a failure.
const Env = "WHET_REQUIRE_TEST_REFS"

// Required reports whether missing references fail the tests.
func Required() bool { return os.Getenv(Env) == "1" }

// Missing reports a missing reference: t.Skip, or t.Fatal when Required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (%s=1: the references are required here)", msg, Env)
	}
	t.Skip(msg)
}
