package gemm

// This file runs the generated assembly kernels in a small interpreter of the
// instructions they use, so that the AVX-512 kernels are checked on machines
// that cannot execute them. The interpreter is itself checked against the
// real AVX2 kernels where the CPU has AVX2.

import (
	"bufio"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/whet-ai/whet/backend/cpu/internal/gemmtest"
)

// asmFunc is one TEXT block of kernel_amd64.s.
type asmFunc struct {
	name   string
	code   [][]string // opcode, operands...
	labels map[string]int
}

func parseAsm(t *testing.T, path string) map[string]*asmFunc {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	funcs := map[string]*asmFunc{}
	var cur *asmFunc
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "TEXT "):
			name := strings.TrimPrefix(strings.Fields(line)[1], "·")
			name = strings.TrimSuffix(name, "(SB),")
			cur = &asmFunc{name: name, labels: map[string]int{}}
			funcs[name] = cur
		case strings.HasSuffix(line, ":"):
			cur.labels[strings.TrimSuffix(line, ":")] = len(cur.code)
		default:
			op, rest, _ := strings.Cut(line, " ")
			ins := []string{op}
			for _, a := range strings.Split(rest, ",") {
				if a = strings.TrimSpace(a); a != "" {
					ins = append(ins, a)
				}
			}
			cur.code = append(cur.code, ins)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return funcs
}

// machine is the state the kernels touch: general registers, vector
// registers, two flags, the argument frame and a flat float32 memory
// addressed in bytes.
type machine struct {
	gpr    map[string]int64
	vec    map[int][]float32 // register number -> 16 lanes
	zf, pf bool
	frame  []byte
	mem    []float32
}

var memOperand = regexp.MustCompile(`^(-?\d*)\((\w+)\)(?:\((\w+)\*(\d)\))?$`)

func (m *machine) vreg(s string) (n, lanes int, ok bool) {
	if len(s) < 2 {
		return 0, 0, false
	}
	switch s[0] {
	case 'X':
		lanes = 4
	case 'Y':
		lanes = 8
	case 'Z':
		lanes = 16
	default:
		return 0, 0, false
	}
	n, err := strconv.Atoi(s[1:])
	if err != nil {
		return 0, 0, false
	}
	if m.vec[n] == nil {
		m.vec[n] = make([]float32, 16)
	}
	return n, lanes, true
}

// addr returns the byte address of a memory operand, or the frame offset and
// true for an argument.
func (m *machine) addr(t *testing.T, s string) (a int64, frame bool) {
	if i := strings.Index(s, "(FP)"); i >= 0 {
		_, off, _ := strings.Cut(s[:i], "+")
		o, err := strconv.Atoi(off)
		if err != nil {
			t.Fatalf("bad frame operand %q", s)
		}
		return int64(o), true
	}
	g := memOperand.FindStringSubmatch(s)
	if g == nil {
		t.Fatalf("bad memory operand %q", s)
	}
	disp, _ := strconv.Atoi(g[1])
	a = int64(disp) + m.gpr[g[2]]
	if g[3] != "" {
		scale, _ := strconv.Atoi(g[4])
		a += m.gpr[g[3]] * int64(scale)
	}
	return a, false
}

func (m *machine) load(t *testing.T, s string, i int) float32 {
	a, frame := m.addr(t, s)
	if frame {
		return math.Float32frombits(binary.LittleEndian.Uint32(m.frame[a:]))
	}
	a += int64(4 * i)
	if a%4 != 0 || a < 0 || int(a/4) >= len(m.mem) {
		t.Fatalf("load %q lane %d: address %d outside memory", s, i, a)
	}
	return m.mem[a/4]
}

func (m *machine) store(t *testing.T, s string, i int, v float32) {
	a, _ := m.addr(t, s)
	a += int64(4 * i)
	if a%4 != 0 || a < 0 || int(a/4) >= len(m.mem) {
		t.Fatalf("store %q lane %d: address %d outside memory", s, i, a)
	}
	m.mem[a/4] = v
}

func imm(t *testing.T, s string) int64 {
	v, err := strconv.ParseInt(strings.TrimPrefix(s, "$"), 10, 64)
	if err != nil {
		t.Fatalf("bad immediate %q", s)
	}
	return v
}

// run executes f until RET; it fails the test on an instruction it does not
// know, so a change to the generator cannot slip past it unnoticed.
func (m *machine) run(t *testing.T, f *asmFunc) {
	t.Helper()
	src := func(s string) int64 {
		if strings.HasPrefix(s, "$") {
			return imm(t, s)
		}
		return m.gpr[s]
	}
	for pc, steps := 0, 0; ; steps++ {
		if pc >= len(f.code) || steps > 10_000_000 {
			t.Fatalf("%s: ran off the end or looped", f.name)
		}
		ins := f.code[pc]
		op, a := ins[0], ins[1:]
		pc++
		jump := func(cond bool) {
			if cond {
				pc = f.labels[a[0]]
			}
		}
		switch op {
		case "MOVQ":
			if strings.Contains(a[0], "(FP)") {
				off, _ := m.addr(t, a[0])
				m.gpr[a[1]] = int64(binary.LittleEndian.Uint64(m.frame[off:]))
			} else {
				m.gpr[a[1]] = src(a[0])
			}
		case "SHLQ":
			m.gpr[a[1]] <<= uint(imm(t, a[0]))
		case "SHRQ":
			m.gpr[a[1]] = int64(uint64(m.gpr[a[1]]) >> uint(imm(t, a[0])))
			m.zf = m.gpr[a[1]] == 0
		case "ANDQ":
			m.gpr[a[1]] &= src(a[0])
			m.zf = m.gpr[a[1]] == 0
		case "ADDQ":
			m.gpr[a[1]] += src(a[0])
		case "DECQ":
			m.gpr[a[0]]--
			m.zf = m.gpr[a[0]] == 0
		case "LEAQ":
			addr, _ := m.addr(t, a[0])
			m.gpr[a[1]] = addr
		case "JZ":
			jump(m.zf)
		case "JNZ", "JNE":
			jump(!m.zf)
		case "JP":
			jump(m.pf)
		case "VXORPS", "VPXORD":
			x, lanes, _ := m.vreg(a[0])
			y, _, _ := m.vreg(a[1])
			d, _, _ := m.vreg(a[2])
			for i := 0; i < 16; i++ {
				v := float32(0)
				if i < lanes {
					v = math.Float32frombits(math.Float32bits(m.vec[x][i]) ^ math.Float32bits(m.vec[y][i]))
				}
				m.vec[d][i] = v
			}
		case "VMOVUPS":
			if d, lanes, ok := m.vreg(a[1]); ok {
				for i := 0; i < lanes; i++ {
					m.vec[d][i] = m.load(t, a[0], i)
				}
			} else {
				s, lanes, _ := m.vreg(a[0])
				for i := 0; i < lanes; i++ {
					m.store(t, a[1], i, m.vec[s][i])
				}
			}
		case "VBROADCASTSS":
			d, lanes, _ := m.vreg(a[1])
			v := m.load(t, a[0], 0)
			for i := 0; i < lanes; i++ {
				m.vec[d][i] = v
			}
		case "VFMADD231PS", "VMULPS":
			x, lanes, _ := m.vreg(a[0])
			y, _, _ := m.vreg(a[1])
			d, _, _ := m.vreg(a[2])
			for i := 0; i < lanes; i++ {
				p := float64(m.vec[y][i]) * float64(m.vec[x][i]) // exact
				if op == "VFMADD231PS" {
					p += float64(m.vec[d][i])
				}
				m.vec[d][i] = float32(p)
			}
		case "VUCOMISS":
			x, _, _ := m.vreg(a[1])
			v, w := m.vec[x][0], m.load(t, a[0], 0)
			unordered := v != v || w != w
			m.zf, m.pf = unordered || v == w, unordered
		case "VZEROUPPER", "PREFETCHT0":
		case "RET":
			return
		default:
			t.Fatalf("%s: interpreter does not know %v", f.name, ins)
		}
	}
}

// callKernel runs a kernel in the interpreter on copies of a, b and c and
// returns the new c. The frame is laid out as the Go declarations say.
func callKernel(t *testing.T, f *asmFunc, rowA bool, k int, a []float32, lda int, b []float32, c []float32, ldc int, alpha, beta float32) []float32 {
	mem := append(append(append([]float32{}, a...), b...), c...)
	aAddr, bAddr, cAddr := int64(0), int64(4*len(a)), int64(4*(len(a)+len(b)))
	args := []int64{int64(k), aAddr}
	if rowA {
		args = append(args, int64(lda))
	}
	args = append(args, bAddr, cAddr, int64(ldc))
	frame := make([]byte, 8*len(args)+8)
	for i, v := range args {
		binary.LittleEndian.PutUint64(frame[8*i:], uint64(v))
	}
	binary.LittleEndian.PutUint32(frame[8*len(args):], math.Float32bits(alpha))
	binary.LittleEndian.PutUint32(frame[8*len(args)+4:], math.Float32bits(beta))
	m := &machine{gpr: map[string]int64{}, vec: map[int][]float32{}, frame: frame, mem: mem}
	m.run(t, f)
	return m.mem[len(a)+len(b):]
}

func TestAsmKernelsInterpreted(t *testing.T) {
	funcs := parseAsm(t, "kernel_amd64.s")
	real := map[string]kernel{}
	for _, k := range available() {
		real[k.name] = k
	}
	for _, tc := range []struct {
		fn     string
		mr, nr int
		rowA   bool
		native string // the kernel in available() that runs the same code natively
	}{
		{"kernelAVX2", 6, 16, false, "avx2"},
		{"kernelAVX2RowA", 6, 16, true, "avx2"},
		{"kernelAVX512", 12, 32, false, "avx512"},
		{"kernelAVX512RowA", 12, 32, true, "avx512"},
	} {
		f := funcs[tc.fn]
		if f == nil {
			t.Fatalf("%s not found in kernel_amd64.s", tc.fn)
		}
		r := rand.New(rand.NewPCG(9, 10))
		for _, k := range []int{1, 3, 4, 5, 8, 17} {
			for _, ab := range [][2]float32{{1, 0}, {-0.5, 1.5}, {2, 1}} {
				lda := k + 3
				ldc := tc.nr + 5
				var a []float32
				if tc.rowA {
					a = gemmtest.RandSlice(r, (tc.mr-1)*lda+k)
				} else {
					a = gemmtest.RandSlice(r, k*tc.mr)
				}
				b := gemmtest.RandSlice(r, k*tc.nr)
				c := gemmtest.RandSlice(r, (tc.mr-1)*ldc+tc.nr+1)
				if ab[1] == 0 {
					for i := range c {
						c[i] = float32(math.NaN())
					}
				}
				sentinel := c[len(c)-1]
				got := callKernel(t, f, tc.rowA, k, a, lda, b, c, ldc, ab[0], ab[1])
				if math.Float32bits(got[len(got)-1]) != math.Float32bits(sentinel) {
					t.Errorf("%s k=%d: wrote past the tile", tc.fn, k)
				}
				// Reference: unpack A into op(A) row-major and compare.
				full := make([]float32, tc.mr*k)
				for i := 0; i < tc.mr; i++ {
					for p := 0; p < k; p++ {
						if tc.rowA {
							full[i*k+p] = a[i*lda+p]
						} else {
							full[i*k+p] = a[p*tc.mr+i]
						}
					}
				}
				want, mag := gemmtest.Ref(false, false, tc.mr, tc.nr, k, ab[0], full, k, b, tc.nr, ab[1], c, ldc)
				for i := 0; i < tc.mr; i++ {
					for j := 0; j < ldc && i*ldc+j < len(got)-1; j++ {
						g := got[i*ldc+j]
						if j >= tc.nr {
							if math.Float32bits(g) != math.Float32bits(c[i*ldc+j]) {
								t.Fatalf("%s k=%d: C[%d,%d] outside the tile changed", tc.fn, k, i, j)
							}
							continue
						}
						if d := math.Abs(float64(g) - want[i*tc.nr+j]); !(d <= 1e-6*mag[i*tc.nr+j]*float64(k+1)) {
							t.Fatalf("%s k=%d alpha=%g beta=%g: C[%d,%d] = %g, want %g", tc.fn, k, ab[0], ab[1], i, j, g, want[i*tc.nr+j])
						}
					}
				}
				// Where the CPU runs this kernel, the interpreter must agree with it.
				nat, ok := real[tc.native]
				if !ok {
					continue
				}
				cn := append([]float32(nil), c...)
				if tc.rowA {
					nat.rowA(k, &a[0], lda, &b[0], &cn[0], ldc, ab[0], ab[1])
				} else {
					nat.fn(k, &a[0], &b[0], &cn[0], ldc, ab[0], ab[1])
				}
				for i := range cn {
					x, y := float64(cn[i]), float64(got[i])
					if x != y && !(math.IsNaN(x) && math.IsNaN(y)) && math.Abs(x-y) > 1e-6*(math.Abs(x)+1e-3) {
						t.Fatalf("%s k=%d: native %g, interpreted %g at %d", tc.fn, k, x, y, i)
					}
				}
			}
		}
	}
}
