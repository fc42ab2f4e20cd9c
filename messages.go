package asyncraft

import "github.com/asyncraft/asyncraft/actors"

// Messages the node actor accepts besides the envelopes of its peers and
// the reports of its log manager, FSM caller and replicators.
type (
	// tick is the host clock, sent by the ticker; it overtakes a backlog.
	tick struct{}
	// nudge says the proposal queue has work.
	nudge struct{}
	// shutdownNode starts an orderly shutdown.
	shutdownNode struct{}
)

func (tick) GetPriority() int8 { return actors.HighPriority }

// Messages of the host's ticker.
type (
	registerTick   struct{ ref actors.Ref }
	unregisterTick struct{ ref actors.Ref }
	tickSelf       struct{}
)
