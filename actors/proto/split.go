package protoactor

import (
	"context"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The sending side of the receiver's limits. protoactor's endpoint writer
// puts up to maxBatchEnvelopes queued messages in one gRPC message,
// counting messages, not bytes, while the receiving host refuses a gRPC
// message over MaxMessageBytes + wireSlack bytes or over its decode budget
// (see cost.go). So the writer's stream is wrapped, and a batch over either
// is sent as several, in order, each within both: the same functions that
// the receiver charges with decide the split, so a host never refuses a
// batch from a host with the same MaxMessageBytes. One message always
// fits: sendRemote refuses larger ones and longer names, and asyncraft's
// costliest message costs under half the budget
// (TestLargestAppendFitsTheBudget).

// outboundStream wraps the client side of Receive streams.
func (s *System) outboundStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn,
	method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if method == receiveMethod {
		s.dial.awaitReady(cc) // see connect.go
	}
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil || method != receiveMethod {
		return cs, err
	}
	return &outbound{ClientStream: cs, s: s}, nil
}

// outbound is the client side of one Receive stream; protoactor's endpoint
// writer calls SendMsg from its own goroutine only.
type outbound struct {
	grpc.ClientStream
	s *System
}

func (o *outbound) SendMsg(m any) error {
	rm, ok := m.(*remote.RemoteMessage)
	batch := rm.GetMessageBatch()
	if !ok || batch == nil {
		return o.ClientStream.SendMsg(m)
	}
	parts := splitBatch(batch, o.s.wireLimit(), o.s.boundary.insp.budget, o.s.boundary.payloadType,
		func() { o.s.oversized.Add(1) })
	if len(parts) == 1 && parts[0] == batch {
		return o.ClientStream.SendMsg(m)
	}
	for _, part := range parts {
		err := o.ClientStream.SendMsg(&remote.RemoteMessage{
			MessageType: &remote.RemoteMessage_MessageBatch{MessageBatch: part},
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// payloadType returns the descriptor of a type this host sends, if
// registered.
func (b *boundary) payloadType(name string) (protoreflect.MessageDescriptor, bool) {
	return b.sent.lookupString(name)
}

// splitBatch splits b into batches whose RemoteMessage is at most limit
// bytes and costs at most budget to decode, keeping the envelopes' order;
// each has its own tables. It returns b itself when b is within both. An
// envelope that cannot fit alone is dropped and reported to oversized.
// Payloads of types that typeOf does not know are charged their bytes
// only (the receiver will refuse them anyway).
func splitBatch(b *remote.MessageBatch, limit, budget int,
	typeOf func(string) (protoreflect.MessageDescriptor, bool), oversized func()) []*remote.MessageBatch {
	// The costs of the envelopes as they are, and whether b fits whole.
	costs := make([]int, len(b.Envelopes))
	total := batchBaseCost
	for _, n := range b.TypeNames {
		total += nameCost(len(n))
	}
	for _, n := range b.Targets {
		total += nameCost(len(n))
	}
	for i, e := range b.Envelopes {
		costs[i] = envelopeCost + len(e.MessageData) + 8
		if int(e.TypeId) < len(b.TypeNames) {
			if md, ok := typeOf(b.TypeNames[e.TypeId]); ok {
				if c, err := envelopeCostOf(md, e.MessageData, budget); err == nil {
					costs[i] = c
				} else {
					costs[i] = budget + 1 // does not fit, even alone
				}
			}
		}
		total += costs[i]
	}
	if total <= budget && outerSize(proto.Size(b)) <= limit {
		return []*remote.MessageBatch{b}
	}

	var (
		parts                   []*remote.MessageBatch
		cur                     *remote.MessageBatch
		size, cost              int // of cur
		types, targets, senders map[string]int32
	)
	field := func(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }
	for i, e := range b.Envelopes {
		typeName, target := b.TypeNames[e.TypeId], b.Targets[e.Target]
		var sender *actor.PID
		if e.Sender > 0 {
			sender = b.Senders[e.Sender-1]
		}
		for attempt := 0; ; attempt++ {
			if cur == nil {
				cur = &remote.MessageBatch{}
				parts = append(parts, cur)
				size, cost = 0, batchBaseCost
				types, targets, senders = map[string]int32{}, map[string]int32{}, map[string]int32{}
			}
			addSize, addCost := 0, costs[i]
			typeID, haveType := types[typeName]
			if !haveType {
				typeID = int32(len(types))
				addSize += field(len(typeName))
				addCost += nameCost(len(typeName))
			}
			targetID, haveTarget := targets[target]
			if !haveTarget {
				targetID = int32(len(targets))
				addSize += field(len(target))
				addCost += nameCost(len(target))
			}
			senderKey, senderID, haveSender := "", int32(0), true
			if sender != nil {
				senderKey = sender.Address + "/" + sender.Id
				if senderID, haveSender = senders[senderKey]; !haveSender {
					senderID = int32(len(senders)) + 1
					addSize += field(proto.Size(sender))
				}
			}
			ne := &remote.MessageEnvelope{
				TypeId:          typeID,
				MessageData:     e.MessageData,
				Target:          targetID,
				Sender:          senderID,
				SerializerId:    e.SerializerId,
				MessageHeader:   e.MessageHeader,
				TargetRequestId: e.TargetRequestId,
				SenderRequestId: e.SenderRequestId,
			}
			addSize += field(proto.Size(ne))
			if outerSize(size+addSize) <= limit && cost+addCost <= budget {
				if !haveType {
					types[typeName] = typeID
					cur.TypeNames = append(cur.TypeNames, typeName)
				}
				if !haveTarget {
					targets[target] = targetID
					cur.Targets = append(cur.Targets, target)
				}
				if !haveSender {
					senders[senderKey] = senderID
					cur.Senders = append(cur.Senders, sender)
				}
				cur.Envelopes = append(cur.Envelopes, ne)
				size += addSize
				cost += addCost
				break
			}
			if len(cur.Envelopes) == 0 || attempt > 0 {
				oversized() // too large even alone
				break
			}
			cur = nil // start a new part and try again
		}
	}
	if cur != nil && len(cur.Envelopes) == 0 {
		parts = parts[:len(parts)-1]
	}
	return parts
}

// outerSize is the size of the RemoteMessage around a MessageBatch of n
// bytes.
func outerSize(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }
