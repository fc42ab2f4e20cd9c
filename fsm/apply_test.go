package fsm_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/closure"
	"github.com/asyncraft/asyncraft/fsm"
	"github.com/asyncraft/asyncraft/internal/testseed"
	"github.com/asyncraft/asyncraft/logmgr"
	"github.com/asyncraft/asyncraft/raftpb"
)

// One OnApply per run of consecutive normal entries; NOOPs are skipped and
// CONFIG entries reported in log order between the runs.
func TestOneOnApplyPerRunOfNormalEntries(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 1, sm)
	w.normal(1, 3)            // 1-3
	w.noop(2)                 // 4
	w.normal(2, 2)            // 5-6
	w.config(2, confFor("a")) // 7
	w.normal(2, 1)            // 8
	w.noop(3)                 // 9
	w.config(3, confFor("b")) // 10
	w.commit(10, w.tasksFor(1, 10)...)
	w.run()

	want := []string{"apply[1-3]", "apply[5-6]", "config", "apply[8-8]", "config"}
	if !slices.Equal(sm.events, want) {
		t.Fatalf("events %v, want %v", sm.events, want)
	}
	if !slices.Equal(sm.seen, []uint64{1, 2, 3, 5, 6, 8}) {
		t.Fatalf("applied %v", sm.seen)
	}
	if len(sm.configs) != 2 || !proto.Equal(sm.configs[0], confFor("a")) || !proto.Equal(sm.configs[1], confFor("b")) {
		t.Fatalf("configurations %v", sm.configs)
	}
	if got := w.node.applied(); !slices.Equal(got, []uint64{10}) {
		t.Fatalf("node got Applied %v, want [10]", got)
	}
	for _, task := range w.tasks {
		var res any
		if w.log.ents[task.Index-1].Type == raftpb.EntryType_ENTRY_TYPE_NORMAL {
			res = result(task.Index)
		}
		w.expect(task, closure.OK, res)
	}
	if w.exec.batches != 1 {
		t.Errorf("%d batches for one pass, want 1", w.exec.batches)
	}
}

// Many Committed messages that arrive before the apply pass runs are folded
// into one pass: one OnApply, one Applied, one batch of completions.
func TestCommittedMessagesAreFolded(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 2, sm)
	w.normal(1, 100)
	for i := uint64(1); i <= 100; i++ {
		w.commit(i, w.task(i, 1))
	}
	w.run()
	if len(sm.calls) >= 10 {
		t.Fatalf("100 Committed messages sent at once caused %d OnApply calls", len(sm.calls))
	}
	if len(sm.calls) != 1 || len(sm.calls[0]) != 100 {
		t.Errorf("OnApply calls %d (first of %d entries), want one of 100", len(sm.calls), len(sm.calls[0]))
	}
	if got := w.node.applied(); !slices.Equal(got, []uint64{100}) {
		t.Errorf("node got Applied %v, want [100]", got)
	}
	if !slices.Equal(sm.seen, seq(1, 100)) {
		t.Errorf("applied %v", sm.seen)
	}
	for _, task := range w.tasks {
		w.expect(task, closure.OK, result(task.Index))
	}

	// Commits delivered one pass at a time are applied one by one.
	w.normal(1, 3)
	for i := uint64(101); i <= 103; i++ {
		w.commit(i)
		w.run()
	}
	if len(sm.calls) != 4 || !slices.Equal(w.node.applied(), []uint64{100, 101, 102, 103}) {
		t.Errorf("after 3 separate commits: %d OnApply calls, Applied %v", len(sm.calls), w.node.applied())
	}
}

// A stale or repeated Committed (index not above the target) changes
// nothing.
func TestStaleCommittedIsHarmless(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 3, sm)
	w.normal(1, 5)
	w.commit(5)
	w.run()
	w.commit(3)
	w.commit(5)
	w.commit(0)
	w.run()
	if !slices.Equal(sm.seen, seq(1, 5)) || !slices.Equal(w.node.applied(), []uint64{5}) {
		t.Fatalf("applied %v, node got %v", sm.seen, w.node.applied())
	}
}

// Applied (fsm.Config.Applied) entries are not applied again.
func TestStartsAfterConfiguredAppliedIndex(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 4, sm, func(c *fsm.Config) { c.Applied = 4 })
	w.normal(1, 6)
	w.commit(3)
	w.run()
	if len(sm.calls) != 0 || len(w.node.msgs) != 0 {
		t.Fatalf("a commit below the applied index did something: calls %v, node %v", sm.calls, w.node.msgs)
	}
	w.commit(6)
	w.run()
	if !slices.Equal(sm.seen, []uint64{5, 6}) || !slices.Equal(w.node.applied(), []uint64{6}) {
		t.Fatalf("applied %v, node got %v", sm.seen, w.node.applied())
	}
}

// Randomized: mixed entries, commits in random chunks (some queued up, some
// applied one pass at a time), a small read size some of the time, and a
// state machine that returns early at random. Every normal entry is applied
// exactly once in order, every task completes exactly once with the right
// outcome, and the same seed gives the same run.
func TestRandomMixedCommits(t *testing.T) {
	seed := testseed.For(t)
	h1 := randomMixed(t, seed)
	h2 := randomMixed(t, seed)
	if h1 != h2 {
		t.Fatalf("seed %d: trace %s then %s", seed, h1, h2)
	}
}

func randomMixed(t *testing.T, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 1))
	smRand := rand.New(rand.NewPCG(seed, 2))
	sm := &recSM{}
	if r.IntN(2) == 0 {
		// Return early at random, after at least one entry.
		sm.apply = func(sm *recSM, it fsm.Iterator) {
			n := 1 + smRand.IntN(4)
			for i := 0; i < n && sm.next(it); i++ {
				it.SetResult(result(it.Index()))
			}
		}
	}
	maxRead := uint64(0)
	if r.IntN(2) == 0 {
		maxRead = uint64(1 + r.IntN(200))
	}
	w := newWorld(t, seed, sm, func(c *fsm.Config) { c.MaxReadBytes = maxRead })

	const n = 400
	var (
		term    uint64 = 1
		normals []uint64
		confs   []*raftpb.Configuration
		want    = map[*fsm.Task]closure.Code{}
	)
	for i := 0; i < n; i++ {
		if r.IntN(20) == 0 {
			term++
		}
		switch k := r.IntN(10); {
		case k < 7:
			_, idx := w.normal(term, 1)
			normals = append(normals, idx)
		case k < 8:
			w.noop(term)
		default:
			c := confFor(fmt.Sprintf("c%d", i))
			confs = append(confs, c)
			w.config(term, c)
		}
	}
	// Tasks: most of the entry's term (OK), some of an older term whose
	// entry was overwritten (ENEWLEADER).
	var tasks []*fsm.Task
	for i := uint64(1); i <= n; i++ {
		e := w.log.ents[i-1]
		switch k := r.IntN(10); {
		case k < 5:
			tasks = append(tasks, w.task(i, e.Term))
			want[tasks[len(tasks)-1]] = closure.OK
		case k < 6 && e.Term > 1:
			tasks = append(tasks, w.task(i, e.Term-1))
			want[tasks[len(tasks)-1]] = closure.ENEWLEADER
		}
	}
	var committed uint64
	for committed < n {
		c := min(n, committed+1+uint64(r.IntN(30)))
		var batch []*fsm.Task
		for len(tasks) > 0 && tasks[0].Index <= c {
			batch = append(batch, tasks[0])
			tasks = tasks[1:]
		}
		w.commit(c, batch...)
		if r.IntN(5) == 0 {
			w.commit(committed) // stale: changes nothing
		}
		committed = c
		if r.IntN(2) == 0 {
			w.run()
		}
	}
	w.run()

	if !slices.Equal(sm.seen, normals) {
		t.Fatalf("seed %d: applied %v, want %v", seed, sm.seen, normals)
	}
	if len(sm.configs) != len(confs) {
		t.Fatalf("seed %d: %d configurations, want %d", seed, len(sm.configs), len(confs))
	}
	for i := range confs {
		if !proto.Equal(sm.configs[i], confs[i]) {
			t.Fatalf("seed %d: configuration %d is %v, want %v", seed, i, sm.configs[i], confs[i])
		}
	}
	for i, call := range sm.calls {
		if len(call) == 0 {
			t.Fatalf("seed %d: OnApply call %d consumed nothing", seed, i)
		}
		for j, idx := range call {
			if w.log.ents[idx-1].Type != raftpb.EntryType_ENTRY_TYPE_NORMAL {
				t.Fatalf("seed %d: OnApply call %d was shown non-normal entry %d", seed, i, idx)
			}
			if j > 0 && idx != call[j-1]+1 {
				t.Fatalf("seed %d: OnApply call %d spans a gap: %v", seed, i, call)
			}
		}
	}
	applied := w.node.applied()
	for i := 1; i < len(applied); i++ {
		if applied[i] <= applied[i-1] {
			t.Fatalf("seed %d: Applied went %d then %d", seed, applied[i-1], applied[i])
		}
	}
	if len(applied) == 0 || applied[len(applied)-1] != n {
		t.Fatalf("seed %d: Applied %v, want to end at %d", seed, applied, n)
	}
	if len(w.node.failed()) != 0 || len(sm.errs) != 0 {
		t.Fatalf("seed %d: failures %v, errors %v", seed, w.node.failed(), sm.errs)
	}
	for task, code := range want {
		var res any
		if w.log.ents[task.Index-1].Type == raftpb.EntryType_ENTRY_TYPE_NORMAL {
			res = result(task.Index)
		}
		w.expect(task, code, res)
	}
	return w.s.TraceHash()
}

// The caller reads through a real logmgr.Log just as well.
func TestAppliesFromLogmgrLog(t *testing.T) {
	storage := logmgr.NewMemoryStorage()
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 20; i++ {
		typ := raftpb.EntryType_ENTRY_TYPE_NORMAL
		if i%5 == 0 {
			typ = raftpb.EntryType_ENTRY_TYPE_NOOP
		}
		ents = append(ents, &raftpb.Entry{Index: i, Term: 1, Type: typ, Data: []byte(fmt.Sprint(i))})
	}
	if err := storage.Append(ents); err != nil {
		t.Fatal(err)
	}
	lg := must(logmgr.NewLog(storage))
	sm := &recSM{}
	w := newWorld(t, 5, sm, func(c *fsm.Config) { c.Log = lg; c.MaxReadBytes = 100 })
	w.commit(20)
	w.run()
	var want []uint64
	for i := uint64(1); i <= 20; i++ {
		if i%5 != 0 {
			want = append(want, i)
		}
	}
	if !slices.Equal(sm.seen, want) || w.node.lastApplied() != 20 {
		t.Fatalf("applied %v, node Applied %v", sm.seen, w.node.applied())
	}
}

// Task outcomes: OK with the result set by SetResult; ENEWLEADER when the
// index holds an entry of another term; Done hands the closure over and the
// framework leaves it alone.
func TestTaskOutcomes(t *testing.T) {
	sm := &recSM{}
	var doneNil []uint64 // indexes where Done returned nil
	sm.apply = func(sm *recSM, it fsm.Iterator) {
		for sm.next(it) {
			switch it.Index() {
			case 2: // no result set
			case 5, 7:
				if sm.claim(it) == nil {
					doneNil = append(doneNil, it.Index())
				}
				it.SetResult(result(it.Index())) // ignored for claimed entries
			case 3, 6:
				if it.Done() != nil { // 3: no task; 6: the task is of another term
					panic("Done returned a closure for an entry with no task of its term")
				}
				doneNil = append(doneNil, it.Index())
				it.SetResult(result(it.Index()))
			default:
				it.SetResult(result(it.Index()))
			}
		}
	}
	w := newWorld(t, 6, sm)
	w.normal(1, 3) // 1-3
	w.noop(2)      // 4
	w.normal(2, 3) // 5-7
	w.config(2, confFor("x"))
	t1, t2 := w.task(1, 1), w.task(2, 1)
	t4old := w.task(4, 1) // index 4 now holds term 2's noop
	t4 := w.task(4, 2)
	t5, t6, t7 := w.task(5, 2), w.task(6, 1), w.task(7, 2)
	t8 := w.task(8, 2)
	w.commit(8, t1, t2, t4old, t4, t5, t6, t7, t8)
	w.run()

	w.expect(t1, closure.OK, result(1))
	w.expect(t2, closure.OK, nil)
	w.expect(t4old, closure.ENEWLEADER, nil)
	w.expect(t4, closure.OK, nil)
	w.expect(t6, closure.ENEWLEADER, nil)
	w.expect(t8, closure.OK, nil)
	if !slices.Equal(doneNil, []uint64{3, 6}) {
		t.Errorf("Done returned nil at %v, want [3 6]", doneNil)
	}
	for _, task := range []*fsm.Task{t5, t7} {
		if w.out(task).runs != 0 {
			t.Fatalf("the framework ran claimed task %d", task.Index)
		}
		if sm.claimed[task.Index] == nil {
			t.Fatalf("Done gave no closure for task %d", task.Index)
		}
	}
	// The state machine runs what it claimed, later, as it likes.
	sm.claimed[5].Run(closure.StatusOK)
	sm.claimed[7].Run(closure.Newf(closure.EAGAIN, "the state machine says so"))
	w.run()
	w.expect(t5, closure.OK, nil)
	w.expect(t7, closure.EAGAIN, nil)
	w.expectAllRanOnce()
	if w.node.lastApplied() != 8 || len(w.node.failed()) != 0 {
		t.Fatalf("node got %v", w.node.msgs)
	}
}

// OnApply returning early: the entries it did not reach are offered again
// in another call; the entry it was on when it returned counts as applied.
func TestEarlyReturnReoffersTheRest(t *testing.T) {
	sm := &recSM{}
	sm.apply = func(sm *recSM, it fsm.Iterator) {
		for i := 0; i < 2 && sm.next(it); i++ {
			it.SetResult(result(it.Index()))
			if it.Index() == 4 {
				sm.claim(it)
			}
		}
	}
	w := newWorld(t, 7, sm)
	w.normal(1, 7)
	w.noop(1)
	w.normal(1, 1)
	tasks := w.tasksFor(1, 9)
	w.commit(9, tasks...)
	w.run()

	want := [][]uint64{{1, 2}, {3, 4}, {5, 6}, {7}, {9}}
	if !slices.EqualFunc(sm.calls, want, slices.Equal) {
		t.Fatalf("OnApply calls %v, want %v", sm.calls, want)
	}
	if w.node.lastApplied() != 9 || len(w.node.failed()) != 0 {
		t.Fatalf("node got %v", w.node.msgs)
	}
	for _, task := range tasks {
		switch task.Index {
		case 4:
			if w.out(task).runs != 0 {
				t.Fatalf("the framework ran the claimed task 4")
			}
			sm.claimed[4].Run(closure.StatusOK)
			w.expect(task, closure.OK, nil)
		case 8:
			w.expect(task, closure.OK, nil)
		default:
			w.expect(task, closure.OK, result(task.Index))
		}
	}
}

// An OnApply that consumes nothing is an error: the node is told, OnError
// runs, the tasks not applied are indeterminate (EUNKNOWN).
func TestOnApplyConsumingNothingFails(t *testing.T) {
	sm := &recSM{}
	sm.apply = func(sm *recSM, it fsm.Iterator) {
		if len(sm.calls) == 1 { // the first call stops after two entries
			sm.next(it)
			sm.next(it)
		}
		// later calls return without calling Next
	}
	w := newWorld(t, 8, sm)
	w.normal(1, 5)
	tasks := w.tasksFor(1, 5)
	w.commit(5, tasks...)
	w.run()

	w.expectFailedOnce(2)
	if len(sm.calls) != 2 || !slices.Equal(sm.seen, []uint64{1, 2}) {
		t.Fatalf("calls %v", sm.calls)
	}
	w.expect(tasks[0], closure.OK, nil)
	w.expect(tasks[1], closure.OK, nil)
	for _, task := range tasks[2:] {
		w.expect(task, closure.EUNKNOWN, nil)
	}

	// Nothing more is applied; later tasks are indeterminate too.
	w.normal(1, 2)
	late := w.tasksFor(6, 7)
	w.commit(7, late...)
	w.run()
	if len(sm.calls) != 2 {
		t.Fatalf("OnApply called after the failure: %v", sm.calls)
	}
	for _, task := range late {
		w.expect(task, closure.EUNKNOWN, nil)
	}
	w.expectFailedOnce(2)
}

// A log read failure is a failure too, reported once.
func TestLogReadErrorFails(t *testing.T) {
	sm := &recSM{}
	w := newWorld(t, 9, sm)
	w.normal(1, 3)
	w.commit(1)
	w.run()
	w.log.err = errStorage
	tasks := w.tasksFor(2, 3)
	w.commit(3, tasks...)
	w.run()
	f := w.expectFailedOnce(1)
	if !errors.Is(f.Err, errStorage) {
		t.Errorf("Failed.Err = %v, want it to wrap %v", f.Err, errStorage)
	}
	for _, task := range tasks {
		w.expect(task, closure.EUNKNOWN, nil)
	}
}
