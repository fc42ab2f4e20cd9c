package chaos

import (
	"fmt"
	"sort"

	"github.com/anishathalye/porcupine"
)

// The workload's operations on the kvstore. Every put and append writes a
// value no other operation writes ("c<client>.<seq>;"), so a write that is
// lost, applied twice or reordered shows in what later reads return.
type opKind byte

const (
	opGet    opKind = 'g'
	opPut    opKind = 'p'
	opAppend opKind = 'a'
	opDelete opKind = 'd'
)

func (k opKind) String() string {
	switch k {
	case opGet:
		return "get"
	case opPut:
		return "put"
	case opAppend:
		return "append"
	case opDelete:
		return "del"
	}
	return fmt.Sprintf("op(%c)", byte(k))
}

type kvInput struct {
	Kind  opKind
	Key   string
	Value string // the written value (put, append)
}

type kvOutput struct {
	Value string // a get's result ("" for a missing key)
	// Unknown: the outcome was never observed (a write that timed out,
	// whose connection broke, or that answered EUNKNOWN).
	Unknown bool
}

// kvModel is the sequential specification of the store, partitioned by
// key (as in internal/chaos, plus delete). A missing key reads as "",
// which no write writes.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvInput).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(string), input.(kvInput), output.(kvOutput)
		switch in.Kind {
		case opGet:
			return out.Unknown || out.Value == st, st
		case opPut:
			return true, in.Value
		case opAppend:
			return true, st + in.Value
		default: // delete
			return true, ""
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
		case opAppend:
			return fmt.Sprintf("append(%s, %q)", in.Key, in.Value)
		default:
			return fmt.Sprintf("del(%s)", in.Key)
		}
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
}
