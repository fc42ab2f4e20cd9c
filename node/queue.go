package node

import (
	"sync"

	"github.com/asyncraft/asyncraft/closure"
)

// Queue is a bounded queue between the Node handle (any goroutine)
// and the node actor: one for proposals, one for reads. It holds no
// protocol state.
//
// Nudging: a push into an empty, un-nudged queue asks the caller to send
// the node one nudge; the node takes everything (or as much as it will) and
// the flag is cleared only when it leaves the queue empty. So a burst costs
// one message, and the node never misses work.
type Queue[T any] struct {
	what   string // for error messages
	mu     sync.Mutex
	items  []T
	head   int
	cap    int
	nudged bool
	closed closure.Status // non-zero Code once the node stopped accepting
}

// NewQueue returns an empty queue of capacity items; what names them in
// errors.
func NewQueue[T any](what string, capacity int) *Queue[T] {
	return &Queue[T]{what: what, cap: capacity}
}

// Push adds p. It returns a non-OK status if the queue is closed or full
// (p is not added), and whether the caller must nudge the node.
func (q *Queue[T]) Push(p T) (st closure.Status, nudge bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed.Code != closure.OK {
		return q.closed, false
	}
	if len(q.items)-q.head >= q.cap {
		return closure.Newf(closure.EBUSY, "%d %s are queued; retry later", q.cap, q.what), false
	}
	q.items = append(q.items, p)
	if !q.nudged {
		q.nudged = true
		return closure.StatusOK, true
	}
	return closure.StatusOK, false
}

// Take removes up to max items, appending them to buf.
func (q *Queue[T]) Take(buf []T, max int) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(max, len(q.items)-q.head)
	buf = append(buf, q.items[q.head:q.head+n]...)
	clear(q.items[q.head : q.head+n])
	q.head += n
	if q.head == len(q.items) {
		q.items = q.items[:0]
		q.head = 0
		q.nudged = false
	} else if q.head > 1024 && q.head > len(q.items)/2 {
		q.items = append(q.items[:0], q.items[q.head:]...)
		q.head = 0
	}
	return buf
}

// Len is the number of queued items.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// Close stops accepting items (later pushes fail with st) and returns
// those still queued.
func (q *Queue[T]) Close(st closure.Status) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = st
	rest := append([]T(nil), q.items[q.head:]...)
	q.items, q.head = nil, 0
	return rest
}
