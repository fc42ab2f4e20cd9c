package sim

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/actors"
)

// NetConfig is the behaviour of the simulated network between hosts. Each
// message independently: is dropped with probability Drop; otherwise
// arrives after a latency drawn uniformly from [MinLatency, MaxLatency],
// plus SpikeDelay with probability Spike; and arrives a second time (with
// its own latency) with probability Duplicate.
//
// Like a TCP connection, a link (one direction between two hosts) delivers
// in order: a message never overtakes an earlier one on its link, so a
// delay spike holds up what follows it. Reordering is a fault of its own:
// with probability Reorder a message is delayed by up to ReorderDelay more
// and may be overtaken, as around a reconnect. Duplicates may arrive out of
// order too.
//
// With a Bandwidth, a link also carries one message at a time: a message
// waits until the link has finished sending the earlier ones, takes its
// encoded size / Bandwidth to send, and then its latency to arrive. So
// what follows a burst of large messages on a link (a heartbeat after a
// window of AppendEntries) waits for the whole burst, as on one TCP
// connection.
type NetConfig struct {
	MinLatency, MaxLatency time.Duration
	Drop                   float64
	Duplicate              float64
	Reorder                float64
	ReorderDelay           time.Duration
	Spike                  float64
	SpikeDelay             time.Duration
	// Bandwidth is each link's capacity in bytes per second (0:
	// unlimited, messages take no time to send).
	Bandwidth int64
}

// DefaultNet is a fault-free LAN: 100 µs to 500 µs one way.
var DefaultNet = NetConfig{MinLatency: 100 * time.Microsecond, MaxLatency: 500 * time.Microsecond}

func (n NetConfig) withDefaults() NetConfig {
	if n.MinLatency == 0 && n.MaxLatency == 0 {
		n.MinLatency, n.MaxLatency = DefaultNet.MinLatency, DefaultNet.MaxLatency
	}
	if n.MaxLatency < n.MinLatency {
		n.MaxLatency = n.MinLatency
	}
	return n
}

// SetNet changes the network's behaviour for messages sent from now on.
func (s *Sim) SetNet(n NetConfig) { s.cfg.Net = n.withDefaults() }

// Net is the network's current behaviour.
func (s *Sim) Net() NetConfig { return s.cfg.Net }

type link struct{ from, to string }

// lastArrival records, per link, when the latest in-order message arrives.
type arrivals map[link]time.Duration

// Block cuts the one-way link from host from to host to: messages sent on
// it from now on are lost. Messages already in flight still arrive.
func (s *Sim) Block(from, to string) { s.blocked[link{from, to}] = true }

// Unblock restores the one-way link from host from to host to.
func (s *Sim) Unblock(from, to string) { delete(s.blocked, link{from, to}) }

// Blocked reports whether the one-way link from from to to is cut.
func (s *Sim) Blocked(from, to string) bool { return s.blocked[link{from, to}] }

// Partition cuts every link between hosts of different groups (both
// directions) and leaves links inside a group alone. Hosts in no group
// keep their links. It adds to the cuts already in place.
func (s *Sim) Partition(groups ...[]string) {
	side := map[string]int{}
	for i, g := range groups {
		for _, h := range g {
			side[h] = i + 1
		}
	}
	for _, a := range s.order {
		for _, b := range s.order {
			sa, sb := side[a.name], side[b.name]
			if a != b && sa != 0 && sb != 0 && sa != sb {
				s.Block(a.name, b.name)
			}
		}
	}
}

// Isolate cuts every link to and from host.
func (s *Sim) Isolate(host string) {
	for _, h := range s.order {
		if h.name != host {
			s.Block(host, h.name)
			s.Block(h.name, host)
		}
	}
}

// Heal restores every link.
func (s *Sim) Heal() { clear(s.blocked) }

// sendRemote puts msg on the network from one host to another.
func (s *Sim) sendRemote(from, to actors.Ref, msg any) {
	pm, ok := msg.(proto.Message)
	if !ok {
		panic(fmt.Sprintf("sim: %T sent from %v to %v crosses hosts but is not a protobuf message", msg, from, to))
	}
	if s.cfg.Tamper != nil {
		pm = s.cfg.Tamper(from, to, pm)
		msg = pm
	}
	wire, err := proto.MarshalOptions{Deterministic: true}.Marshal(pm)
	if err != nil {
		panic(fmt.Sprintf("sim: marshal %T: %v", msg, err))
	}
	s.hash.Write(wire)
	if s.cfg.OnSend != nil {
		s.cfg.OnSend(from, to, msg)
	}
	n := s.cfg.Net
	if s.blocked[link{from.Host, to.Host}] {
		s.drops++
		s.record(&event{kind: evDeliver, from: from, to: to, msg: msg}, "drop: link cut")
		return
	}
	if n.Drop > 0 && s.netRand.Float64() < n.Drop {
		s.drops++
		s.record(&event{kind: evDeliver, from: from, to: to, msg: msg}, "drop: lost")
		return
	}
	copies := 1
	if n.Duplicate > 0 && s.netRand.Float64() < n.Duplicate {
		copies = 2
	}
	l := link{from.Host, to.Host}
	for i := 0; i < copies; i++ {
		sent := s.base()
		if n.Bandwidth > 0 {
			sent = max(sent, s.linkFree[l]) + time.Duration(int64(len(wire))*int64(time.Second)/n.Bandwidth)
			s.linkFree[l] = sent
		}
		d := n.MinLatency
		if span := n.MaxLatency - n.MinLatency; span > 0 {
			d += time.Duration(s.netRand.Int64N(int64(span)))
		}
		inOrder := i == 0
		if n.Reorder > 0 && n.ReorderDelay > 0 && s.netRand.Float64() < n.Reorder {
			d += time.Duration(s.netRand.Int64N(int64(n.ReorderDelay)))
			inOrder = false
		}
		if n.Spike > 0 && s.netRand.Float64() < n.Spike {
			d += n.SpikeDelay
		}
		at := sent + d
		if inOrder {
			at = max(at, s.lastArrival[l])
			s.lastArrival[l] = at
		}
		clone := pm.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(wire, clone); err != nil {
			panic(fmt.Sprintf("sim: unmarshal %T: %v", msg, err))
		}
		s.push(&event{at: at, kind: evDeliver, from: from, to: to, msg: clone, wire: true})
	}
}
