package sim_test

import (
	"testing"
	"time"

	"github.com/asyncraft/asyncraft/actors"
	"github.com/asyncraft/asyncraft/actors/sim"
	"github.com/asyncraft/asyncraft/raftpb"
)

// arrivals records when each envelope arrives, by sequence number.
type arrivals struct {
	s  *sim.Sim
	at map[uint64]time.Duration
}

func (a *arrivals) Receive(_ actors.Env, msg any) {
	if e, ok := msg.(*raftpb.Envelope); ok {
		a.at[e.Seq] = a.s.Now()
	}
}

// sender sends its messages when it starts.
type sender []outMsg

type outMsg struct {
	to  actors.Ref
	msg any
}

func (s sender) Receive(env actors.Env, msg any) {
	if _, ok := msg.(actors.Started); ok {
		for _, m := range s {
			env.Send(m.to, m.msg)
		}
	}
}

// TestBandwidthQueuesBehindLargeMessages: on a 1 MB/s link with 1 ms of
// latency, three 100 kB messages take 100 ms each to send, one after the
// other, and a small message sent after them waits for all three; on
// another link, or without a bandwidth, nothing waits.
func TestBandwidthQueuesBehindLargeMessages(t *testing.T) {
	for _, bw := range []int64{0, 1e6} {
		s := sim.New(sim.Config{Seed: 1, Net: sim.NetConfig{MinLatency: time.Millisecond, MaxLatency: time.Millisecond, Bandwidth: bw}})
		a := s.AddHost("a", sim.HostConfig{})
		s.AddHost("b", sim.HostConfig{})
		s.AddHost("c", sim.HostConfig{})
		rb, rc := &arrivals{s: s, at: map[uint64]time.Duration{}}, &arrivals{s: s, at: map[uint64]time.Duration{}}
		s.Host("b").Spawn("r", rb)
		s.Host("c").Spawn("r", rc)
		big := make([]byte, 100_000)
		b, c := actors.Ref{Host: "b", Name: "r"}, actors.Ref{Host: "c", Name: "r"}
		var out sender
		for seq := uint64(1); seq <= 3; seq++ {
			out = append(out, outMsg{b, &raftpb.Envelope{Seq: seq, Body: &raftpb.Envelope_AppendRequest{AppendRequest: &raftpb.AppendRequest{Entries: []*raftpb.Entry{{Data: big}}}}}})
		}
		out = append(out, outMsg{b, &raftpb.Envelope{Seq: 4}}, outMsg{c, &raftpb.Envelope{Seq: 5}})
		a.Spawn("s", out)
		s.RunFor(time.Second)
		if bw == 0 {
			for seq, at := range rb.at {
				if at != time.Millisecond {
					t.Fatalf("no bandwidth: message %d arrived at %v, want 1ms", seq, at)
				}
			}
			continue
		}
		for seq := uint64(1); seq <= 3; seq++ {
			if at, want := rb.at[seq], time.Duration(seq)*100*time.Millisecond+time.Millisecond; at < want || at > want+time.Millisecond {
				t.Fatalf("100 kB message %d arrived at %v, want about %v", seq, at, want)
			}
		}
		if at := rb.at[4]; at < 301*time.Millisecond || at > 302*time.Millisecond {
			t.Fatalf("the small message after them arrived at %v, want just after 301ms", at)
		}
		if at := rc.at[5]; at > 2*time.Millisecond {
			t.Fatalf("a message on another link arrived at %v: links do not share bandwidth", at)
		}
	}
}
