package asyncraft

import (
	"sync"

	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
)

// proposal is a task waiting in the queue: the record the FSM caller will
// complete, the command, and the term it must be appended in (0: any).
type proposal struct {
	task         *fsm.Task
	data         []byte
	expectedTerm uint64
}

// taskQueue is the bounded queue between Node.Apply (any goroutine) and the
// node actor. It is the one structure the public handle and the actor
// share; it holds no protocol state.
//
// Nudging: a push into an empty, un-nudged queue asks the caller to send
// the node one nudge; the node takes everything (or as much as it will) and
// the flag is cleared only when it leaves the queue empty. So a burst of
// proposals costs one message, and the node never misses work.
type taskQueue struct {
	mu     sync.Mutex
	items  []proposal
	head   int
	cap    int
	nudged bool
	closed closure.Status // non-zero Code once the node stopped accepting
}

func newTaskQueue(capacity int) *taskQueue { return &taskQueue{cap: capacity} }

// push adds p. It returns a non-OK status if the queue is closed or full
// (p is not added), and whether the caller must nudge the node.
func (q *taskQueue) push(p proposal) (st closure.Status, nudge bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed.Code != closure.OK {
		return q.closed, false
	}
	if len(q.items)-q.head >= q.cap {
		return closure.Newf(closure.EBUSY, "%d proposals are queued (MaxPendingTasks); retry later", q.cap), false
	}
	q.items = append(q.items, p)
	if !q.nudged {
		q.nudged = true
		return closure.StatusOK, true
	}
	return closure.StatusOK, false
}

// take removes up to max proposals, appending them to buf.
func (q *taskQueue) take(buf []proposal, max int) []proposal {
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

// len is the number of queued proposals.
func (q *taskQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// close stops accepting proposals (later pushes fail with st) and returns
// those still queued.
func (q *taskQueue) close(st closure.Status) []proposal {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = st
	rest := append([]proposal(nil), q.items[q.head:]...)
	q.items, q.head = nil, 0
	return rest
}
