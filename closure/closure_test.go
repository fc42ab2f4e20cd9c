package closure

import (
	"errors"
	"fmt"
	"testing"
)

func TestStatusErrMatchesSentinels(t *testing.T) {
	cases := []struct {
		st   Status
		want error
	}{
		{NotLeader("n2"), ErrNotLeader},
		{Newf(EBUSY, "queue full (%d)", 3), ErrBusy},
		{Status{Code: EUNKNOWN}, ErrUnknownOutcome},
		{Status{Code: ENEWLEADER}, ErrNewLeader},
	}
	for _, c := range cases {
		err := c.st.Err()
		if !errors.Is(err, c.want) {
			t.Errorf("%v: errors.Is(%v, %v) = false", c.st, err, c.want)
		}
		if errors.Is(err, ErrTimeout) {
			t.Errorf("%v matched ErrTimeout", c.st)
		}
		wrapped := fmt.Errorf("outer: %w", err)
		if got := StatusOf(wrapped); got.Code != c.st.Code {
			t.Errorf("StatusOf(wrapped %v) = %v", c.st, got)
		}
	}
	if StatusOK.Err() != nil {
		t.Fatal("OK status has an error")
	}
	if st := StatusOf(errors.New("boom")); st.Code != EINTERNAL {
		t.Fatalf("plain error maps to %v", st)
	}
}

func TestNotLeaderCarriesLeader(t *testing.T) {
	st := NotLeader("n3")
	if st.Code != EPERM || st.Leader != "n3" {
		t.Fatalf("got %+v", st)
	}
	if NotLeader("").Leader != "" {
		t.Fatal("unknown leader should be empty")
	}
}

func TestCodeStrings(t *testing.T) {
	seen := map[string]bool{}
	for c := OK; c < numCodes; c++ {
		s := c.String()
		if s == "" || seen[s] {
			t.Fatalf("code %d has name %q (empty or duplicate)", int(c), s)
		}
		seen[s] = true
	}
	if Code(99).String() != "Code(99)" {
		t.Fatal(Code(99).String())
	}
}

func TestGuardRunsOnce(t *testing.T) {
	before := DoubleRuns()
	n := 0
	var got any
	g := NewGuard(ResultFunc(func(st Status, r any) { n++; got = r }))
	if !g.RunResult(StatusOK, 42) {
		t.Fatal("first run refused")
	}
	if g.RunResult(StatusOK, 43) {
		t.Fatal("second run accepted")
	}
	g.Run(Status{Code: EBUSY})
	if n != 1 || got != 42 || !g.Ran() {
		t.Fatalf("ran %d times, result %v", n, got)
	}
	if DoubleRuns()-before != 2 {
		t.Fatalf("double runs counted %d, want 2", DoubleRuns()-before)
	}
}

func TestGuardDropsResultOnFailure(t *testing.T) {
	var got any = "unset"
	g := NewGuard(ResultFunc(func(st Status, r any) { got = r }))
	g.RunResult(Status{Code: EUNKNOWN}, 7)
	if got != nil {
		t.Fatalf("failed status delivered result %v", got)
	}
}

func TestExecutorRecoversAndContinues(t *testing.T) {
	var order []int
	e := &Executor{}
	e.Execute(Batch{
		{Closure: Func(func(Status) { order = append(order, 1) })},
		{Closure: Func(func(Status) { panic("user bug") })},
		{Closure: NewGuard(Func(func(st Status) { order = append(order, int(st.Code)) })), Status: Status{Code: EBUSY}},
		{Closure: nil},
	})
	if len(order) != 2 || order[0] != 1 || order[1] != int(EBUSY) {
		t.Fatalf("order %v", order)
	}
	if e.Panics() != 1 {
		t.Fatalf("panics %d", e.Panics())
	}
}
