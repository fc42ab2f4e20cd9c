package proto

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
	return walkCost(md, b, budget, 0)
}

func walkCost(md protoreflect.MessageDescriptor, b []byte, budget, depth int) (int, error) {
	if depth > maxDecodeDepth {
		return 0, errDepth
	}
	cost := structCost(md)
	fields := md.Fields()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, errWire
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return 0, errWire
		}
		raw, val := b[:n+m], b[n:n+m]
		b = b[n+m:]
		fd := fields.ByNumber(num)
		if fd == nil || !wireMatches(fd, typ) {
			cost += (growth + 1) * len(raw)
		} else {
			c, err := fieldCost(fd, typ, val, budget-cost, depth)
			if err != nil {
				return 0, err
			}
			cost += c
		}
		if cost > budget {
			return 0, errBudget{budget}
		}
	}
	return cost, nil
}

// fieldCost is the cost of one occurrence of the known field fd, whose
// value val has the wire type the field expects.
func fieldCost(fd protoreflect.FieldDescriptor, typ protowire.Type, val []byte, budget, depth int) (int, error) {
	oneof := 0
	if fd.ContainingOneof() != nil && !fd.ContainingOneof().IsSynthetic() {
		oneof = 16
	}
	switch {
	case fd.IsMap():
		v, n := protowire.ConsumeBytes(val)
		if n < 0 {
			return 0, errWire
		}
		c, err := walkCost(fd.Message(), v, budget, depth+1)
		return 64 + c, err
	case fd.Kind() == protoreflect.MessageKind:
		v, n := protowire.ConsumeBytes(val)
		if n < 0 {
			return 0, errWire
		}
		c, err := walkCost(fd.Message(), v, budget, depth+1)
		if fd.IsList() {
			c += growth * 8
		}
		return c + oneof, err
	case fd.Kind() == protoreflect.GroupKind:
		return 0, errors.New("protobuf groups are not accepted")
	case fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind:
		v, n := protowire.ConsumeBytes(val)
		if n < 0 {
			return 0, errWire
		}
		c := len(v) + 8 + oneof
		if fd.IsList() {
			c += growth * 16
			if fd.Kind() == protoreflect.BytesKind {
				c += growth * 8
			}
		}
		return c, nil
	case fd.IsList() && typ == protowire.BytesType: // packed scalars
		v, n := protowire.ConsumeBytes(val)
		if n < 0 {
			return 0, errWire
		}
		return growth * 8 * len(v), nil
	case fd.IsList():
		return growth * 8, nil
	}
	return oneof, nil // a scalar lives in its message's struct
}

// wireMatches reports whether protobuf decodes a value of wire type typ
// into fd (otherwise it keeps it as an unknown field).
func wireMatches(fd protoreflect.FieldDescriptor, typ protowire.Type) bool {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.StringKind, protoreflect.BytesKind:
		return typ == protowire.BytesType
	case protoreflect.GroupKind:
		return typ == protowire.StartGroupType
	}
	if fd.IsList() && typ == protowire.BytesType {
		return true // packed
	}
	switch fd.Kind() {
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return typ == protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return typ == protowire.Fixed64Type
	}
	return typ == protowire.VarintType
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
