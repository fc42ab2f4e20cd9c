package confchange

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/asyncraft/asyncraft/internal/testseed"
)

func peers(ids ...string) []Peer {
	ps := make([]Peer, len(ids))
	for i, id := range ids {
		ps[i] = Peer{ID: id, Addr: "h-" + id}
	}
	return ps
}

func cfg(voters, learners []string) Config {
	return Normalize(Config{Voters: peers(voters...), Learners: peers(learners...)})
}

func TestHelpers(t *testing.T) {
	cur := cfg([]string{"a", "b", "c"}, []string{"l"})
	for _, tc := range []struct {
		name string
		got  func() (Config, error)
		want Config
		err  error
	}{
		{"add voter", func() (Config, error) { return AddVoter(cur, Peer{ID: "d", Addr: "h-d"}) }, cfg([]string{"a", "b", "c", "d"}, []string{"l"}), nil},
		{"add a voter twice", func() (Config, error) { return AddVoter(cur, Peer{ID: "a", Addr: "h-a"}) }, Config{}, ErrUnchanged},
		{"add voter over a learner", func() (Config, error) { return AddVoter(cur, Peer{ID: "l", Addr: "h-l"}) }, cfg([]string{"a", "b", "c", "l"}, nil), nil},
		{"add learner", func() (Config, error) { return AddLearner(cur, Peer{ID: "m", Addr: "h-m"}) }, cfg([]string{"a", "b", "c"}, []string{"l", "m"}), nil},
		{"add a voter as learner", func() (Config, error) { return AddLearner(cur, Peer{ID: "a", Addr: "h-a"}) }, Config{}, ErrInvalid},
		{"add a learner twice", func() (Config, error) { return AddLearner(cur, Peer{ID: "l", Addr: "h-l"}) }, Config{}, ErrUnchanged},
		{"promote", func() (Config, error) { return Promote(cur, "l") }, cfg([]string{"a", "b", "c", "l"}, nil), nil},
		{"promote a voter", func() (Config, error) { return Promote(cur, "a") }, Config{}, ErrInvalid},
		{"demote", func() (Config, error) { return Demote(cur, "a") }, cfg([]string{"b", "c"}, []string{"a", "l"}), nil},
		{"demote a learner", func() (Config, error) { return Demote(cur, "l") }, Config{}, ErrInvalid},
		{"remove voter", func() (Config, error) { return Remove(cur, "b") }, cfg([]string{"a", "c"}, []string{"l"}), nil},
		{"remove learner", func() (Config, error) { return Remove(cur, "l") }, cfg([]string{"a", "b", "c"}, nil), nil},
		{"remove a stranger", func() (Config, error) { return Remove(cur, "z") }, Config{}, ErrUnchanged},
		{"replace", func() (Config, error) { return Replace(cur, "a", Peer{ID: "e", Addr: "h-e"}) }, cfg([]string{"b", "c", "e"}, []string{"l"}), nil},
		{"replace with a learner", func() (Config, error) { return Replace(cur, "a", Peer{ID: "l", Addr: "h-l"}) }, cfg([]string{"b", "c", "l"}, nil), nil},
		{"replace with a voter", func() (Config, error) { return Replace(cur, "a", Peer{ID: "b", Addr: "h-b"}) }, Config{}, ErrInvalid},
		{"replace a stranger", func() (Config, error) { return Replace(cur, "z", Peer{ID: "e", Addr: "h-e"}) }, Config{}, ErrInvalid},
	} {
		got, err := tc.got()
		if !errors.Is(err, tc.err) || (tc.err == nil && !got.Equal(tc.want)) {
			t.Errorf("%s: got %v, %v; want %v, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestNextRefuses(t *testing.T) {
	cur := cfg([]string{"a", "b", "c"}, nil)
	joint, err := Next(cur, cfg([]string{"a", "b", "d"}, nil), nil)
	if err != nil || !joint.Joint() {
		t.Fatalf("Next: %v, %v", joint, err)
	}
	for _, tc := range []struct {
		name        string
		cur, target Config
		expect      *Config
		err         error
	}{
		{"a second change while joint", joint, cfg([]string{"a"}, nil), nil, ErrInProgress},
		{"no change", cur, cfg([]string{"c", "b", "a"}, nil), nil, ErrUnchanged},
		{"no voters", cur, cfg(nil, []string{"a"}), nil, ErrInvalid},
		{"a voter and a learner", cur, cfg([]string{"a", "b"}, []string{"b"}), nil, ErrInvalid},
		{"a voter twice", cur, Config{Voters: peers("a", "a", "b")}, nil, ErrInvalid},
		{"an empty id", cur, Config{Voters: peers("a", "")}, nil, ErrInvalid},
		{"a slash", cur, Config{Voters: peers("a", "x/y")}, nil, ErrInvalid},
		{"no address", cur, Config{Voters: []Peer{{ID: "a"}, {ID: "b", Addr: "h-b"}}}, nil, ErrInvalid},
		{"a joint target", cur, joint, nil, ErrInvalid},
		{"guard: another configuration", cur, cfg([]string{"a", "b"}, nil), &Config{Voters: peers("a", "b", "d")}, ErrStale},
	} {
		if got, err := Next(tc.cur, tc.target, tc.expect); !errors.Is(err, tc.err) {
			t.Errorf("%s: got %v, %v; want %v", tc.name, got, err, tc.err)
		}
	}
	// The guard passes when the members are the expected ones, in any
	// order and whatever their addresses.
	if _, err := Next(cur, cfg([]string{"a", "b"}, nil), &Config{Voters: []Peer{{ID: "c", Addr: "x"}, {ID: "a", Addr: "y"}, {ID: "b", Addr: "z"}}}); err != nil {
		t.Errorf("guarded change with the current members: %v", err)
	}
}

// isQuorum is the oracle: a set of ids is a quorum of a configuration if
// it holds a strict majority of the new voters and, when joint, of the old
// voters too.
func isQuorum(c Config, set map[string]bool) bool {
	maj := func(ps []Peer) bool {
		if len(ps) == 0 {
			return true
		}
		n := 0
		for _, p := range ps {
			if set[p.ID] {
				n++
			}
		}
		return 2*n > len(ps)
	}
	return maj(c.Voters) && maj(c.OldVoters)
}

// randConfig draws a valid configuration of up to 5 voters and 2 learners
// among the ids a to h.
func randConfig(r *rand.Rand) Config {
	all := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	nv := 1 + r.IntN(5)
	nl := r.IntN(3)
	return cfg(all[:nv], all[nv:nv+nl])
}

// Random changes against the oracle: the entry Next returns decides
// exactly as a majority of the old voters and one of the new would, in
// every subset of the members; leaving it gives the target; every member
// of either side is replicated to; a change of learners alone is a
// single step.
func TestNextAgainstOracle(t *testing.T) {
	seed := testseed.For(t)
	r := rand.New(rand.NewPCG(seed, 0))
	for iter := range 3000 {
		cur, target := randConfig(r), randConfig(r)
		if r.IntN(4) == 0 {
			target = Normalize(Config{Voters: cur.Voters, Learners: target.Learners})
			target.Learners = slices.DeleteFunc(target.Learners, func(p Peer) bool { return has(cur.Voters, p.ID) })
		}
		j, err := Next(cur, target, nil)
		if cur.Equal(target) {
			if !errors.Is(err, ErrUnchanged) {
				t.Fatalf("seed %d iter %d: %v to itself: %v, %v", seed, iter, cur, j, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("seed %d iter %d: %v to %v: %v", seed, iter, cur, target, err)
		}
		sameVoters := slices.Equal(ids(cur.Voters), ids(target.Voters))
		if sameVoters == j.Joint() {
			t.Fatalf("seed %d iter %d: %v to %v gave %v (joint %v with the same voters %v)", seed, iter, cur, target, j, j.Joint(), sameVoters)
		}
		// A joint configuration replicates to the members of both sides;
		// a single step, to the target's.
		members := j.Members()
		want := target.Members()
		if j.Joint() {
			want = append(want, cur.Members()...)
		}
		for _, p := range want {
			if !has(members, p.ID) {
				t.Fatalf("seed %d iter %d: %v misses member %s of %v or %v", seed, iter, j, p.ID, cur, target)
			}
		}
		// Every subset of the members, against the quorum package.
		q := j.Quorum()
		for mask := range 1 << len(members) {
			set := map[string]bool{}
			for i, p := range members {
				if mask&(1<<i) != 0 {
					set[p.ID] = true
				}
			}
			committed := q.Committed(func(id string) (uint64, bool) {
				if set[id] {
					return 1, true
				}
				return 0, false
			}) >= 1
			want := isQuorum(Config{Voters: target.Voters, OldVoters: map[bool][]Peer{true: cur.Voters}[!sameVoters]}, set)
			if committed != want {
				t.Fatalf("seed %d iter %d: %v commits with %v: %v, want %v", seed, iter, j, set, committed, want)
			}
		}
		if !j.Joint() {
			continue
		}
		for _, p := range cur.Voters {
			if !j.IsVoter(p.ID) {
				t.Fatalf("seed %d iter %d: old voter %s does not vote in %v", seed, iter, p.ID, j)
			}
		}
		if _, err := Next(j, cur, nil); !errors.Is(err, ErrInProgress) {
			t.Fatalf("seed %d iter %d: a second change from %v: %v", seed, iter, j, err)
		}
		c, err := Leave(j)
		if err != nil || !c.Equal(target) {
			t.Fatalf("seed %d iter %d: leaving %v gave %v, %v; want %v", seed, iter, j, c, err, target)
		}
	}
}

// History against a model: a list of (index, configuration) searched
// by brute force.
func TestHistoryAgainstModel(t *testing.T) {
	seed := testseed.For(t)
	r := rand.New(rand.NewPCG(seed, 1))
	type rec struct {
		index uint64
		cfg   Config
	}
	var h History
	var model []rec
	last := uint64(0)
	for step := range 5000 {
		switch n := r.IntN(10); {
		case n < 5:
			last += 1 + r.Uint64N(5)
			c := randConfig(r)
			if err := h.Append(last, c); err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			model = append(model, rec{last, c})
		case n < 7:
			from := r.Uint64N(last + 2)
			h.Truncate(from)
			model = slices.DeleteFunc(model, func(v rec) bool { return v.index >= from })
			last = min(last, from)
		case n < 9:
			first := r.Uint64N(last + 2)
			h.Compact(first)
			// Only the newest at or before first, and those after, stay.
			keep := -1
			for k := range model {
				if model[k].index <= first {
					keep = k
				}
			}
			if keep > 0 {
				model = slices.Clone(model[keep:])
			}
		default:
			last += r.Uint64N(3)
			c := randConfig(r)
			h.Reset(last, c)
			model = []rec{{last, c}}
		}
		for i := uint64(0); i <= last+2; i++ {
			var want *rec
			for k := range model {
				if model[k].index <= i {
					want = &model[k]
				}
			}
			got, from, ok := h.At(i)
			switch {
			case want == nil && ok:
				t.Fatalf("seed %d step %d: At(%d) = %v at %d, want none", seed, step, i, got, from)
			case want != nil && (!ok || from != want.index || !got.Equal(want.cfg)):
				t.Fatalf("seed %d step %d: At(%d) = %v at %d (%v), want %v at %d", seed, step, i, got, from, ok, want.cfg, want.index)
			}
		}
		if h.Len() != len(model) {
			t.Fatalf("seed %d step %d: %d configurations kept, want %d", seed, step, h.Len(), len(model))
		}
	}
}

func TestHistoryRefusesOutOfOrder(t *testing.T) {
	var h History
	if err := h.Append(5, cfg([]string{"a"}, nil)); err != nil {
		t.Fatal(err)
	}
	for _, i := range []uint64{3, 5} {
		if err := h.Append(i, cfg([]string{"b"}, nil)); err == nil {
			t.Errorf("Append(%d) after 5 succeeded", i)
		}
	}
}

func ExampleNext() {
	cur := cfg([]string{"a", "b", "c"}, nil)
	target, _ := Replace(cur, "c", Peer{ID: "d", Addr: "h-d"})
	joint, _ := Next(cur, target, nil)
	final, _ := Leave(joint)
	fmt.Println(joint)
	fmt.Println(final)
	// Output:
	// voters (a b d) (joint; old voters (a b c))
	// voters (a b d)
}

// TestStamp: a member of the configuration in force keeps its Since, in
// whatever role the next one gives it; a member that joins gets the
// entry's index; what the next configuration carried is ignored; and
// equality ignores Since.
func TestStamp(t *testing.T) {
	p := func(id string, since uint64) Peer { return Peer{ID: id, Addr: id, Since: since} }
	cur := Config{Voters: []Peer{p("a", 0), p("b", 7)}, Learners: []Peer{p("c", 9)}}
	next := Config{Voters: []Peer{p("b", 99), p("c", 0), p("d", 3)}, Learners: []Peer{p("e", 0)},
		OldVoters: []Peer{p("a", 5), p("b", 0)}, OldLearners: []Peer{p("c", 1)}}
	got := Stamp(cur, next, 12)
	want := Config{Voters: []Peer{p("b", 7), p("c", 9), p("d", 12)}, Learners: []Peer{p("e", 12)},
		OldVoters: []Peer{p("a", 0), p("b", 7)}, OldLearners: []Peer{p("c", 9)}}
	for _, l := range [][2][]Peer{{got.Voters, want.Voters}, {got.Learners, want.Learners}, {got.OldVoters, want.OldVoters}, {got.OldLearners, want.OldLearners}} {
		if !slices.Equal(l[0], l[1]) {
			t.Errorf("Stamp: got %+v, want %+v", l[0], l[1])
		}
	}
	if next.Voters[0].Since != 99 {
		t.Errorf("Stamp changed its argument: %+v", next.Voters)
	}
	if !got.Equal(next) {
		t.Errorf("configurations that differ only in Since are not Equal: %v, %v", got, next)
	}
	if s, ok := got.SinceOf("e"); !ok || s != 12 {
		t.Errorf("SinceOf(e) = %d, %v; want 12, true", s, ok)
	}
	if _, ok := got.SinceOf("z"); ok {
		t.Errorf("SinceOf(z): found a member that is not there")
	}
}
