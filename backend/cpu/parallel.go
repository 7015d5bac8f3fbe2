package cpu

import (
	"sync"
)

// parallelFor splits [0, n) into at most b.threads contiguous ranges of at
// least grain items each and runs fn on them concurrently, returning when all
// are done. Small jobs run on the calling goroutine.
func (b *Backend) parallelFor(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	t := min(b.threads, max(1, n/max(grain, 1)))
	if t <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := 1; w < t; w++ {
		lo, hi := w*n/t, (w+1)*n/t
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	fn(0, n/t)
	wg.Wait()
}

// parallelTasks runs fn(i) for every i in [0, n), handing tasks to at most
// b.threads goroutines in order, for work items of uneven cost (attention
// heads, causal blocks). fn(w, i) also gets the worker's index w, so that
// each worker can keep its own scratch memory.
func (b *Backend) parallelTasks(n int, fn func(worker, i int)) {
	if n <= 0 {
		return
	}
	t := min(b.threads, n)
	if t <= 1 {
		for i := 0; i < n; i++ {
			fn(0, i)
		}
		return
	}
	var (
		mu   sync.Mutex
		next int
		wg   sync.WaitGroup
	)
	take := func() int {
		mu.Lock()
		defer mu.Unlock()
		i := next
		next++
		return i
	}
	for w := 0; w < t; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := take(); i < n; i = take() {
				fn(w, i)
			}
		}()
	}
	wg.Wait()
}
