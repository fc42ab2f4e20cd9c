package protoactor

import (
	"errors"
	"fmt"
	"reflect"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The decode cost model: how much heap proto.Unmarshal will allocate for
// some bytes, read off the bytes without decoding them.
//
// Protobuf decoding amplifies: an empty element of a repeated message field
// is two bytes on the wire and a whole Go struct in memory. Four MiB of
// empty MessageEnvelopes decode to 236 MiB, four MiB of empty raft entries
// to 205 MiB (measured). A size limit on the wire therefore does not bound
// what a peer makes a host hold; this cost does, and the boundary refuses
// a batch whose cost exceeds its budget before anything decodes it.
//
// The model charges, in bytes, what decoding asks the allocator for
// (garbage included: a repeated field's slice is reallocated as it grows,
// by 1.25 times once large, so all its backing arrays together take about
// five times the final one):
//
//   - each message: its Go struct (the generated type's size) + 24 for the
//     allocator's size classes;
//   - each element of a repeated field: 5 times its slot (40 for a pointer
//     or a scalar, 80 for a string header, 120 for a []byte header); a
//     packed scalar field 40 per byte;
//   - each string or bytes value: its length + 8;
//   - each map entry: 64 + its key and value;
//   - a oneof member: 16 for its wrapper;
//   - unknown fields, and known fields with another wire type (which
//     protobuf keeps as unknown): 6 times their bytes (the unknown bytes
//     start small, and small slices grow by doubling).
//
// It bounds Go's real allocations for generated types from above, within
// a factor of two (TestDecodeCostBoundsHeap checks both), and it costs a
// walk over the tags of the bytes, no allocation.

// maxDecodeDepth bounds the nesting the cost walk (and so the decoder after
// it) accepts. asyncraft's messages nest four deep.
const maxDecodeDepth = 64

// growth is how many times its final size a growing slice allocates in
// all (see above).
const growth = 5

var (
	errWire  = errors.New("invalid protobuf wire format")
	errDepth = fmt.Errorf("messages nested more than %d deep", maxDecodeDepth)
	errGroup = errors.New("protobuf groups are not accepted")
)

// errBudget reports a message that would cost more than the budget.
type errBudget struct{ budget int }

func (e errBudget) Error() string {
	return fmt.Sprintf("decoding would allocate more than %d bytes", e.budget)
}

// decodeCost is the model's cost of decoding b as a message of md. It fails
// with errBudget as soon as the cost exceeds budget, and with errWire on
// bytes that are not protobuf.
func decodeCost(md protoreflect.MessageDescriptor, b []byte, budget int) (int, error) {
	return walkCost(planFor(md), b, budget, 0)
}

func walkCost(p *plan, b []byte, budget, depth int) (int, error) {
	if depth > maxDecodeDepth {
		return 0, errDepth
	}
	cost := p.cost
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, errWire
		}
		f := p.field(num)
		if f == nil || (typ != f.wire && !(f.packed && typ == protowire.BytesType)) {
			// Unknown, or a known field with another wire type: protobuf
			// keeps it as unknown bytes.
			m := protowire.ConsumeFieldValue(num, typ, b[n:])
			if m < 0 {
				return 0, errWire
			}
			cost += (growth + 1) * (n + m)
			b = b[n+m:]
		} else {
			b = b[n:]
			c, m, err := f.cost(typ, b, budget-cost, depth)
			if err != nil {
				return 0, err
			}
			cost += c
			b = b[m:]
		}
		if cost > budget {
			return 0, errBudget{budget}
		}
	}
	return cost, nil
}

// cost is the cost of one occurrence of the field, whose value, of wire
// type typ (one the field takes), starts b; m is the value's length.
func (f *fieldPlan) cost(typ protowire.Type, b []byte, budget, depth int) (c, m int, err error) {
	if f.kind == kindGroup {
		return 0, 0, errGroup
	}
	if typ != protowire.BytesType {
		m = protowire.ConsumeFieldValue(0, typ, b)
		if m < 0 {
			return 0, 0, errWire
		}
		return f.extra, m, nil // a scalar: in its message's struct or a slot
	}
	v, m := protowire.ConsumeBytes(b)
	if m < 0 {
		return 0, 0, errWire
	}
	switch f.kind {
	case kindMessage:
		c, err = walkCost(f.sub, v, budget, depth+1)
		return f.extra + c, m, err
	case kindBytes:
		return f.extra + len(v), m, nil
	}
	return growth * 8 * len(v), m, nil // packed scalars
}

// plan is what the cost walk needs to know of a message type, computed
// once per type: its own cost and its fields by number.
type plan struct {
	cost   int
	dense  []fieldPlan // by number, for numbers below len(dense)
	sparse map[protowire.Number]*fieldPlan
}

type fieldKind uint8

const (
	kindScalar  fieldKind = iota
	kindBytes             // string or bytes
	kindMessage           // a message, or a map entry
	kindGroup             // a proto2 group: asyncraft uses none
)

// fieldPlan describes one field for the walk.
type fieldPlan struct {
	known  bool
	kind   fieldKind
	wire   protowire.Type // the wire type it is written with
	packed bool           // a repeated scalar: also takes BytesType
	// extra is what an occurrence costs beyond its content (a message's
	// walk, a string's bytes, a packed field's elements).
	extra int
	sub   *plan // of a message field's type
}

func (p *plan) field(num protowire.Number) *fieldPlan {
	if int(num) < len(p.dense) {
		if f := &p.dense[num]; f.known {
			return f
		}
		return nil
	}
	return p.sparse[num]
}

// plans caches a plan per message descriptor. Plans are built under
// buildMu, with the plans of their message fields' types, and published
// complete.
var (
	plans   sync.Map // protoreflect.MessageDescriptor -> *plan
	buildMu sync.Mutex
)

// maxDense bounds the field numbers planned in a slice.
const maxDense = 256

func planFor(md protoreflect.MessageDescriptor) *plan {
	if v, ok := plans.Load(md); ok {
		return v.(*plan)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	built := map[protoreflect.MessageDescriptor]*plan{}
	p := buildPlan(md, built)
	for d, q := range built {
		plans.Store(d, q)
	}
	return p
}

// buildPlan builds the plan of md and of the types it reaches that have
// none yet, into built (which also ends recursion on recursive types).
func buildPlan(md protoreflect.MessageDescriptor, built map[protoreflect.MessageDescriptor]*plan) *plan {
	if v, ok := plans.Load(md); ok {
		return v.(*plan)
	}
	if p, ok := built[md]; ok {
		return p
	}
	p := &plan{cost: structCost(md)}
	built[md] = p
	fields := md.Fields()
	top := 0
	for i := range fields.Len() {
		if n := int(fields.Get(i).Number()); n < maxDense {
			top = max(top, n+1)
		}
	}
	p.dense = make([]fieldPlan, top)
	for i := range fields.Len() {
		fd := fields.Get(i)
		f := planField(fd)
		if f.kind == kindMessage {
			f.sub = buildPlan(fd.Message(), built)
		}
		if n := fd.Number(); int(n) < maxDense {
			p.dense[n] = f
		} else {
			if p.sparse == nil {
				p.sparse = make(map[protowire.Number]*fieldPlan)
			}
			p.sparse[n] = &f
		}
	}
	return p
}

func planField(fd protoreflect.FieldDescriptor) fieldPlan {
	f := fieldPlan{known: true}
	oneof := 0
	if o := fd.ContainingOneof(); o != nil && !o.IsSynthetic() {
		oneof = 16
	}
	switch fd.Kind() {
	case protoreflect.MessageKind:
		f.kind, f.wire = kindMessage, protowire.BytesType
		switch {
		case fd.IsMap():
			f.extra = 64
		case fd.IsList():
			f.extra = growth*8 + oneof
		default:
			f.extra = oneof
		}
	case protoreflect.GroupKind: // proto2 only; refused (see cost)
		f.kind, f.wire = kindGroup, protowire.StartGroupType
	case protoreflect.StringKind, protoreflect.BytesKind:
		f.kind, f.wire = kindBytes, protowire.BytesType
		f.extra = 8 + oneof
		if fd.IsList() {
			f.extra += growth * 16
			if fd.Kind() == protoreflect.BytesKind {
				f.extra += growth * 8
			}
		}
	default:
		f.wire = scalarWire(fd.Kind())
		f.packed = fd.IsList()
		f.extra = oneof
		if fd.IsList() {
			f.extra = growth * 8
		}
	}
	return f
}

// scalarWire is the wire type of a scalar kind.
func scalarWire(k protoreflect.Kind) protowire.Type {
	switch k {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	}
	return protowire.VarintType
}

// structSizes caches the size of each message type's Go struct, by
// descriptor.
var structSizes sync.Map // protoreflect.MessageDescriptor -> int

// structCost is what one decoded message of md costs by itself: its Go
// struct plus allocator slack. Types without a registered Go type (map
// entries, dynamic messages) are charged 64 bytes plus 16 per field.
func structCost(md protoreflect.MessageDescriptor) int {
	if v, ok := structSizes.Load(md); ok {
		return v.(int)
	}
	size := 64 + 16*md.Fields().Len()
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil {
		if t := reflect.TypeOf(mt.Zero().Interface()); t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
			size = int(t.Elem().Size())
		}
	}
	size += 24
	structSizes.Store(md, size)
	return size
}
