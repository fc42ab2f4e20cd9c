package chaos

import (
	"fmt"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/asyncraft/asyncraft/fsm"
)

// The workload's commands: get, put and append on string keys. Every put
// and append writes a value no other operation writes ("c<client>.<seq>"),
// so an operation applied twice, lost or reordered shows in the values.
type opKind byte

const (
	opGet    opKind = 'g'
	opPut    opKind = 'p'
	opAppend opKind = 'a'
)

type kvInput struct {
	Kind  opKind
	Key   string
	Value string // the written value, or a unique tag for a get
}

type kvOutput struct {
	Value   string
	Unknown bool // the operation's outcome was never observed
}

// kvResult is what the state machine hands to an operation's closure.
type kvResult struct {
	Index uint64
	Value string
}

func encode(in kvInput) []byte {
	return []byte(string(in.Kind) + " " + in.Key + " " + in.Value)
}

func decode(b []byte) (kvInput, bool) {
	parts := strings.SplitN(string(b), " ", 3)
	if len(parts) != 3 || len(parts[0]) != 1 {
		return kvInput{}, false
	}
	return kvInput{Kind: opKind(parts[0][0]), Key: parts[1], Value: parts[2]}, true
}

// kvMachine is the workload's state machine: a map of strings. Each node
// life has its own, rebuilt by replaying the log after a restart. It tells
// the oracle about every entry it applies.
type kvMachine struct {
	fsm.Base
	r    *run
	id   string
	life int
	data map[string]string
	last uint64
}

func (m *kvMachine) OnApply(it fsm.Iterator) {
	for it.Next() {
		idx, term, data := it.Index(), it.Term(), it.Data()
		if idx <= m.last {
			m.r.violate("state machine safety", "%s (life %d) applied entry %d after entry %d", m.id, m.life, idx, m.last)
		}
		m.last = max(m.last, idx)
		m.r.oracle.applied(m.id, idx, term, string(data))
		in, ok := decode(data)
		if !ok {
			m.r.violate("state machine safety", "%s applied an undecodable command %q at %d", m.id, data, idx)
			continue
		}
		switch in.Kind {
		case opGet:
			it.SetResult(kvResult{Index: idx, Value: m.data[in.Key]})
		case opPut:
			m.data[in.Key] = in.Value
			it.SetResult(kvResult{Index: idx})
		case opAppend:
			m.data[in.Key] += in.Value
			it.SetResult(kvResult{Index: idx})
		}
		m.r.oracle.state(m.id, idx, hashState(m.data))
	}
}

// kvModel is the sequential specification porcupine checks histories
// against, partitioned by key.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		return byKey(history, func(op porcupine.Operation) string { return op.Input.(kvInput).Key })
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(string), input.(kvInput), output.(kvOutput)
		switch in.Kind {
		case opGet:
			return out.Unknown || out.Value == st, st
		case opPut:
			return true, in.Value
		default:
			return true, st + in.Value
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		switch in.Kind {
		case opGet:
			if out.Unknown {
				return fmt.Sprintf("get(%s) -> ?", in.Key)
			}
			return fmt.Sprintf("get(%s) -> %q", in.Key, out.Value)
		case opPut:
			return fmt.Sprintf("put(%s, %q)", in.Key, in.Value)
		default:
			return fmt.Sprintf("append(%s, %q)", in.Key, in.Value)
		}
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
}

// ordered is a history's operation with the log index its write was first
// committed at (0 for a get, or a write nobody committed).
type ordered struct {
	kvInput
	index uint64
}

// orderedState is the value of a key and the index of the last write to it.
type orderedState struct {
	value string
	last  uint64
}

// kvLogModel is kvModel with the writes of a key taken in log order: a
// stricter specification (every history it accepts kvModel accepts, with
// the same linearization), which a Raft key-value store must meet anyway,
// since its state machines apply writes in log order. Its search is
// linear where kvModel's may be exponential: a batch of writes whose
// outcome the clients never learned, all applied at one instant, is a
// block of concurrent operations kvModel tries in every order.
var kvLogModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		return byKey(history, func(op porcupine.Operation) string { return op.Input.(ordered).Key })
	},
	Init: func() any { return orderedState{} },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(orderedState), input.(ordered), output.(kvOutput)
		switch in.Kind {
		case opGet:
			return out.Unknown || out.Value == st.value, st
		case opPut:
			return in.index > st.last, orderedState{in.Value, in.index}
		default:
			return in.index > st.last, orderedState{st.value + in.Value, in.index}
		}
	},
}

// byKey partitions a history by key (linearizability is local: a history
// is linearizable if each key's is), each key's operations in history
// order, the keys sorted.
func byKey(history []porcupine.Operation, key func(porcupine.Operation) string) [][]porcupine.Operation {
	parts := map[string][]porcupine.Operation{}
	for _, op := range history {
		k := key(op)
		parts[k] = append(parts[k], op)
	}
	keys := make([]string, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, parts[k])
	}
	return out
}
