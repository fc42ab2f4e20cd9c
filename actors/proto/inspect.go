package protoactor

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Inspecting what arrives, before anything decodes it.
//
// protoactor's endpoint reader trusts its input: it indexes the batch's
// tables with the envelope's numbers (a negative or out-of-range type id,
// target or sender panics the process), decodes any registered type
// (including its own actor.Stop, PoisonPill and Watch, which let a peer
// stop or watch any actor by name) and decodes everything before looking
// at any of it. So every RemoteMessage is inspected on its wire bytes first
// and refused whole unless it is exactly what asyncraft's own sender
// produces:
//
//   - a MessageBatch or a ConnectRequest (from a server connection, with
//     no block list), and nothing else, no unknown field;
//   - at most maxBatchEnvelopes envelopes, type names and targets, names
//     at most maxNameBytes long;
//   - no sender PIDs, no message headers, serializer 0 (protobuf): ctx.Send
//     of a bare message produces none of them;
//   - every type id and target index within its table;
//   - every type name one this host accepts (Options.RemoteTypes);
//   - a decode cost (see cost.go) of the whole batch, payloads included,
//     within the budget.
//
// Payloads are not decoded here: their bytes are walked for the cost
// (which also catches most malformed ones); protoactor decodes them.

const (
	// maxBatchEnvelopes caps the envelopes of one gRPC message. The
	// sending side's writer takes at most this many messages per batch.
	maxBatchEnvelopes = 1000
	// maxNameBytes caps a target (actor) or type name.
	maxNameBytes = 4 << 10
	// decodeFactor sizes the decode budget of one arriving gRPC message
	// (and of all messages being decoded at once, host-wide):
	// decodeFactor × MaxMessageBytes. asyncraft's costliest message costs
	// about 6.3 × MaxMessageBytes (TestLargestAppendFitsTheBudget), and the
	// sender splits batches to fit (split.go).
	decodeFactor = 16
)

// rejectError is why an arriving message was refused.
type rejectError struct{ reason string }

func (e *rejectError) Error() string { return e.reason }

func rejectf(format string, args ...any) error {
	return &rejectError{reason: fmt.Sprintf(format, args...)}
}

// inspector checks arriving RemoteMessages. Its methods are safe for
// concurrent use (one gRPC stream per peer calls them).
type inspector struct {
	budget int // the decode cost a message may reach
	// accept decides the payload types, by full name; see acceptTypes.
	accept func(protoreflect.FullName) (protoreflect.MessageDescriptor, bool)
	// types caches accept's positive answers. Refused names are not cached,
	// so that a peer cannot grow the cache.
	types atomic.Pointer[map[string]protoreflect.MessageDescriptor]
	mu    sync.Mutex // serialises writers of types
}

// Fixed parts of a batch's cost: the RemoteMessage, its oneof wrapper and
// the MessageBatch; one envelope.
var (
	batchBaseCost = structCost((&remote.RemoteMessage{}).ProtoReflect().Descriptor()) + 16 +
		structCost((&remote.MessageBatch{}).ProtoReflect().Descriptor())
	envelopeCost = structCost((&remote.MessageEnvelope{}).ProtoReflect().Descriptor()) + growth*8
)

// nameCost is the cost of one entry of a repeated string field.
func nameCost(n int) int { return growth*16 + n + 8 }

// protoactorPkg is the Go package path prefix of protoactor's own message
// types, which no peer may send.
const protoactorPkg = "github.com/asynkron/protoactor-go"

// acceptTypes builds the type filter: with names, exactly those types (if
// registered); without, every registered type but protoactor's own.
func acceptTypes(names []protoreflect.FullName) func(protoreflect.FullName) (protoreflect.MessageDescriptor, bool) {
	var only map[protoreflect.FullName]bool
	if len(names) > 0 {
		only = make(map[protoreflect.FullName]bool, len(names))
		for _, n := range names {
			only[n] = true
		}
	}
	return func(name protoreflect.FullName) (protoreflect.MessageDescriptor, bool) {
		if only != nil && !only[name] {
			return nil, false
		}
		mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
		if err != nil {
			return nil, false
		}
		if t := reflect.TypeOf(mt.Zero().Interface()); t.Kind() == reflect.Pointer &&
			strings.HasPrefix(t.Elem().PkgPath(), protoactorPkg) {
			return nil, false
		}
		return mt.Descriptor(), true
	}
}

// lookup returns the descriptor of an accepted type name.
func (in *inspector) lookup(name []byte) (protoreflect.MessageDescriptor, bool) {
	if m := in.types.Load(); m != nil {
		if md, ok := (*m)[string(name)]; ok { // no allocation
			return md, true
		}
	}
	return in.learn(string(name))
}

// lookupString is lookup for a string.
func (in *inspector) lookupString(name string) (protoreflect.MessageDescriptor, bool) {
	if m := in.types.Load(); m != nil {
		if md, ok := (*m)[name]; ok {
			return md, true
		}
	}
	return in.learn(name)
}

// learn asks accept about name and caches a positive answer.
func (in *inspector) learn(name string) (protoreflect.MessageDescriptor, bool) {
	md, ok := in.accept(protoreflect.FullName(name))
	if !ok {
		return nil, false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	old := in.types.Load()
	next := make(map[string]protoreflect.MessageDescriptor)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[name] = md
	in.types.Store(&next)
	return md, true
}

// inspect checks the wire bytes of one RemoteMessage and returns its
// decode cost.
func (in *inspector) inspect(raw []byte) (int, error) {
	cost, err := in.inspectMessage(raw)
	if _, over := err.(errBudget); over {
		return 0, errBudget{in.budget} // the whole budget, not what was left
	}
	return cost, err
}

func (in *inspector) inspectMessage(raw []byte) (int, error) {
	var part []byte
	var kind protowire.Number
	parts := 0
	for b := raw; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, errWire
		}
		b = b[n:]
		if typ != protowire.BytesType || (num != 1 && num != 2) {
			return 0, rejectf("RemoteMessage field %d (wire type %d): only message batches and connect requests are served", num, typ)
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return 0, errWire
		}
		b = b[m:]
		part, kind = v, num
		parts++
	}
	if parts != 1 {
		return 0, rejectf("%d parts in one RemoteMessage, want 1", parts)
	}
	if kind == 2 {
		return in.inspectConnect(part)
	}
	return in.inspectBatch(part)
}

// inspectConnect checks a ConnectRequest: a ServerConnection with a member
// id and an address, as protoactor's endpoint writer sends.
func (in *inspector) inspectConnect(b []byte) (int, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, errWire
	}
	if num != 2 || typ != protowire.BytesType {
		return 0, rejectf("ConnectRequest field %d (wire type %d): only server connections are served", num, typ)
	}
	sc, m := protowire.ConsumeBytes(b[n:])
	if m < 0 {
		return 0, errWire
	}
	if n+m != len(b) {
		return 0, rejectf("ConnectRequest with more than one field")
	}
	cost := 256
	for len(sc) > 0 {
		num, typ, n := protowire.ConsumeTag(sc)
		if n < 0 {
			return 0, errWire
		}
		if (num != 1 && num != 2) || typ != protowire.BytesType {
			return 0, rejectf("ServerConnection field %d (wire type %d): only a member id and an address are accepted", num, typ)
		}
		v, m := protowire.ConsumeBytes(sc[n:])
		if m < 0 {
			return 0, errWire
		}
		if len(v) > maxNameBytes {
			return 0, rejectf("ServerConnection field %d of %d bytes, over %d", num, len(v), maxNameBytes)
		}
		cost += len(v) + 8
		sc = sc[n+m:]
	}
	return cost, nil
}

// inspectBatch checks a MessageBatch and returns the cost of the whole
// RemoteMessage holding it.
func (in *inspector) inspectBatch(batch []byte) (int, error) {
	var stack [8]protoreflect.MessageDescriptor
	types := stack[:0]
	targets, envelopes := 0, 0
	cost := batchBaseCost
	// First the tables, which may come after the envelopes that index them.
	for b := batch; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, errWire
		}
		b = b[n:]
		if typ != protowire.BytesType {
			return 0, rejectf("MessageBatch field %d has wire type %d", num, typ)
		}
		v, m := protowire.ConsumeBytes(b)
		if m < 0 {
			return 0, errWire
		}
		b = b[m:]
		switch num {
		case 1: // type_names
			if len(types) == maxBatchEnvelopes {
				return 0, rejectf("more than %d type names", maxBatchEnvelopes)
			}
			md, ok := in.lookup(v)
			if !ok {
				return 0, rejectf("message type %.100q is not accepted", v)
			}
			types = append(types, md)
			cost += nameCost(len(v))
		case 2: // targets
			if targets++; targets > maxBatchEnvelopes {
				return 0, rejectf("more than %d targets", maxBatchEnvelopes)
			}
			if len(v) > maxNameBytes {
				return 0, rejectf("a target name of %d bytes, over %d", len(v), maxNameBytes)
			}
			cost += nameCost(len(v))
		case 3: // envelopes
			if envelopes++; envelopes > maxBatchEnvelopes {
				return 0, rejectf("more than %d envelopes", maxBatchEnvelopes)
			}
		case 4:
			return 0, rejectf("sender PIDs: asyncraft sends none")
		default:
			return 0, rejectf("MessageBatch field %d does not exist", num)
		}
	}
	if cost > in.budget {
		return 0, errBudget{in.budget}
	}
	for b := batch; len(b) > 0; {
		num, _, n := protowire.ConsumeTag(b)
		v, m := protowire.ConsumeBytes(b[n:])
		b = b[n+m:]
		if num != 3 {
			continue
		}
		c, err := in.inspectEnvelope(v, types, targets, in.budget-cost)
		if err != nil {
			return 0, err
		}
		cost += c
	}
	return cost, nil
}

// inspectEnvelope checks one MessageEnvelope against its batch's tables
// and returns its cost, payload included.
func (in *inspector) inspectEnvelope(b []byte, types []protoreflect.MessageDescriptor, targets, budget int) (int, error) {
	var typeID, target int32
	var data []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, errWire
		}
		b = b[n:]
		switch num {
		case 2: // message_data
			if typ != protowire.BytesType {
				return 0, rejectf("MessageEnvelope field 2 has wire type %d", typ)
			}
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return 0, errWire
			}
			data, b = v, b[m:]
		case 1, 3, 4, 5, 7, 8:
			if typ != protowire.VarintType {
				return 0, rejectf("MessageEnvelope field %d has wire type %d", num, typ)
			}
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return 0, errWire
			}
			b = b[m:]
			// Protobuf decodes an int32 field by truncation; so does this.
			switch num {
			case 1:
				typeID = int32(v)
			case 3:
				target = int32(v)
			case 4:
				if int32(v) != 0 {
					return 0, rejectf("an envelope with sender %d: asyncraft sends none", int32(v))
				}
			case 5:
				if int32(v) != 0 {
					return 0, rejectf("serializer %d: only protobuf (0) is accepted", int32(v))
				}
			}
			// 7 and 8 are request ids, which nothing here reads.
		case 6:
			return 0, rejectf("a message header: asyncraft sends none")
		default:
			return 0, rejectf("MessageEnvelope field %d does not exist", num)
		}
	}
	if typeID < 0 || int(typeID) >= len(types) {
		return 0, rejectf("type id %d outside the %d type names", typeID, len(types))
	}
	if target < 0 || int(target) >= targets {
		return 0, rejectf("target %d outside the %d targets", target, targets)
	}
	md := types[typeID]
	cost, err := envelopeCostOf(md, data, budget)
	if err != nil {
		if _, over := err.(errBudget); over {
			return 0, err
		}
		return 0, rejectf("a %s payload: %v", md.FullName(), err)
	}
	return cost, nil
}

// envelopeCostOf is the cost of one envelope whose payload, of type md, is
// data. The receiver charges it (inspectEnvelope) and the sender splits
// batches by it (splitBatch): both compute the same number.
func envelopeCostOf(md protoreflect.MessageDescriptor, data []byte, budget int) (int, error) {
	cost := envelopeCost + len(data) + 8
	if cost > budget {
		return 0, errBudget{budget}
	}
	c, err := decodeCost(md, data, budget-cost)
	if err != nil {
		return 0, err
	}
	return cost + c, nil
}
