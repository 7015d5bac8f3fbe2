module github.com/whet-ai/whet

go 1.26

require (
	github.com/ebitengine/purego v0.11.3 // indirect
	github.com/spf13/pflag v1.1.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	gonum.org/v1/gonum v0.17.0 // indirect
)
