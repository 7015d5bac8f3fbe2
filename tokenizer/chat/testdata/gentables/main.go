// Command gentables prints Go's simple case mappings and character classes
// for every code point, for gen_unicode_tables.py to compare with Python's.
package main

import (
	"bufio"
	"fmt"
	"os"
	"unicode"
)

func main() {
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xd800 && r <= 0xdfff {
			continue
		}
		b := func(ok bool) int {
			if ok {
				return 1
			}
			return 0
		}
		fmt.Fprintf(w, "%d %d %d %d %d %d %d\n", r, unicode.ToUpper(r), unicode.ToLower(r), unicode.ToTitle(r),
			b(unicode.IsLetter(r)), b(unicode.Is(unicode.Nd, r)), b(unicode.In(r, unicode.Nd, unicode.Nl, unicode.No)))
	}
}
