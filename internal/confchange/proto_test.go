package confchange

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/raftpb"
)

// TestEncodeDecodeRoundTrip: a configuration entry's data decodes to the
// configuration it was encoded from, joint or not, learners included,
// each list sorted by id whatever the order it was written in.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	unsorted := func(ids ...string) []Peer { return peers(ids...) } // in the order given
	for _, tc := range []struct {
		name string
		in   Config
	}{
		{"one voter", Config{Voters: unsorted("a")}},
		{"voters", Config{Voters: unsorted("c", "a", "b")}},
		{"voters and learners", Config{Voters: unsorted("c", "a", "b"), Learners: unsorted("m", "l")}},
		{"joint", Config{Voters: unsorted("d", "b", "a"), OldVoters: unsorted("c", "b", "a")}},
		{"joint with learners on both sides", Config{
			Voters: unsorted("d", "b", "a"), Learners: unsorted("z", "l"),
			OldVoters: unsorted("c", "b", "a"), OldLearners: unsorted("y", "l"),
		}},
	} {
		got, err := Decode(Encode(tc.in))
		if err != nil {
			t.Errorf("%s: Decode(Encode(%v)): %v", tc.name, tc.in, err)
			continue
		}
		want := Normalize(tc.in)
		if !got.Equal(want) {
			t.Errorf("%s: round trip gave %+v, want %+v", tc.name, got, want)
		}
		for i, list := range [][]Peer{got.Voters, got.Learners, got.OldVoters, got.OldLearners} {
			if !slices.IsSortedFunc(list, byID) {
				t.Errorf("%s: list %d not sorted by id: %v", tc.name, i, list)
			}
			// Addresses travel with their ids.
			for _, p := range list {
				if p.Addr != "h-"+p.ID {
					t.Errorf("%s: peer %s came back at %q, want %q", tc.name, p.ID, p.Addr, "h-"+p.ID)
				}
			}
		}
		if got.Joint() != tc.in.Joint() {
			t.Errorf("%s: Joint %v after the round trip, %v before", tc.name, got.Joint(), tc.in.Joint())
		}
		// Empty lists come back nil, so that Equal compares like with like.
		if len(tc.in.Learners) == 0 && got.Learners != nil || len(tc.in.OldVoters) == 0 && got.OldVoters != nil {
			t.Errorf("%s: empty lists came back non-nil: %+v", tc.name, got)
		}
	}
}

// TestDecodeRefuses: data that is not a configuration a leader could have
// written is refused with an error that wraps ErrInvalid and says what is
// wrong.
func TestDecodeRefuses(t *testing.T) {
	raw := func(c *raftpb.Configuration) []byte {
		b, err := proto.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	p := func(id, addr string) *raftpb.Peer { return &raftpb.Peer{Id: id, Addr: addr} }
	ok3 := []*raftpb.Peer{p("a", "h-a"), p("b", "h-b"), p("c", "h-c")}
	for _, tc := range []struct {
		name    string
		data    []byte
		invalid bool     // errors.Is(err, ErrInvalid)
		says    []string // the message contains each
	}{
		{"a truncated field", []byte{0x0a, 0x05, 0x0a}, true, []string{"configuration entry", "proto"}},
		{"an unfinished varint tag", []byte{0xff}, true, []string{"configuration entry", "proto"}},
		{"a peer that is not a message", []byte{0x0a, 0x02, 0xff, 0xff}, true, []string{"configuration entry", "proto"}},
		{"empty data", nil, true, []string{"no voters"}},
		{"learners only", raw(&raftpb.Configuration{Learners: []*raftpb.Peer{p("l", "h-l")}}), true, []string{"no voters"}},
		{"a voter twice", raw(&raftpb.Configuration{Voters: append(ok3, p("b", "h-b2"))}), true, []string{"peer b is listed twice"}},
		{"a voter also a learner", raw(&raftpb.Configuration{Voters: ok3, Learners: []*raftpb.Peer{p("c", "h-c")}}), true, []string{"peer c is listed twice"}},
		{"an empty id", raw(&raftpb.Configuration{Voters: []*raftpb.Peer{p("", "h-x"), p("a", "h-a")}}), true, []string{`peer id ""`, "non-empty"}},
		{"an id with a slash", raw(&raftpb.Configuration{Voters: []*raftpb.Peer{p("a", "h-a"), p("x/y", "h-x")}}), true, []string{`peer id "x/y"`, `without "/"`}},
		{"a learner with a slash", raw(&raftpb.Configuration{Voters: ok3, Learners: []*raftpb.Peer{p("l/1", "h-l")}}), true, []string{`peer id "l/1"`}},
		{"a voter without an address", raw(&raftpb.Configuration{Voters: []*raftpb.Peer{p("a", "h-a"), p("b", "")}}), true, []string{"peer b has no address"}},
		{"a learner without an address", raw(&raftpb.Configuration{Voters: ok3, Learners: []*raftpb.Peer{p("l", "")}}), true, []string{"peer l has no address"}},
		{"old learners without old voters", raw(&raftpb.Configuration{Voters: ok3, OldLearners: []*raftpb.Peer{p("l", "h-l")}}), true, []string{"old learners but no old voters"}},
		{"an old half with a voter twice", raw(&raftpb.Configuration{Voters: ok3, OldVoters: []*raftpb.Peer{p("a", "h-a"), p("a", "h-a")}}), true, []string{"old half", "peer a is listed twice"}},
		{"an old half without an address", raw(&raftpb.Configuration{Voters: ok3, OldVoters: []*raftpb.Peer{p("a", "h-a"), p("d", "")}}), true, []string{"old half", "peer d has no address"}},
		{"an old learner also an old voter", raw(&raftpb.Configuration{Voters: ok3, OldVoters: []*raftpb.Peer{p("a", "h-a")}, OldLearners: []*raftpb.Peer{p("a", "h-a")}}), true, []string{"old half", "peer a is listed twice"}},
		{"an old half with an empty id", raw(&raftpb.Configuration{Voters: ok3, OldVoters: []*raftpb.Peer{p("", "h-x")}}), true, []string{"old half", `peer id ""`}},
		{"a new half invalid in a joint entry", raw(&raftpb.Configuration{Voters: []*raftpb.Peer{p("a", "")}, OldVoters: ok3}), true, []string{"peer a has no address"}},
	} {
		c, err := Decode(tc.data)
		if err == nil {
			t.Errorf("%s: Decode(%x) = %v, want an error", tc.name, tc.data, c)
			continue
		}
		if !c.Equal(Config{}) {
			t.Errorf("%s: a refused entry decoded to %v, want the empty configuration", tc.name, c)
		}
		if got := errors.Is(err, ErrInvalid); got != tc.invalid {
			t.Errorf("%s: errors.Is(%v, ErrInvalid) = %v, want %v", tc.name, err, got, tc.invalid)
		}
		for _, s := range tc.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, s)
			}
		}
	}
}
