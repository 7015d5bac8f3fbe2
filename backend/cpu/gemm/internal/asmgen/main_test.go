package main

import (
	"bytes"
	"os"
	"testing"
)

// TestGeneratedUpToDate fails when kernel_amd64.s differs from what the
// generator writes: edit the generator, then run go generate.
func TestGeneratedUpToDate(t *testing.T) {
	want, err := os.ReadFile("../../kernel_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(generate(), want) {
		t.Fatal("backend/cpu/gemm/kernel_amd64.s is stale: run go generate ./backend/cpu/gemm")
	}
}
