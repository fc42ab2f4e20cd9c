package confchange

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/asyncraft/asyncraft/raftpb"
)

// FromProto is the configuration a raftpb.Configuration states, its lists
// sorted by id (nil: the empty configuration).
func FromProto(c *raftpb.Configuration) Config {
	conv := func(ps []*raftpb.Peer) []Peer {
		if len(ps) == 0 {
			return nil
		}
		out := make([]Peer, len(ps))
		for i, p := range ps {
			out[i] = Peer{ID: p.GetId(), Addr: p.GetAddr(), Promote: p.GetPromote(), Priority: p.GetPriority(), Since: p.GetSince()}
		}
		return out
	}
	return Normalize(Config{Voters: conv(c.GetVoters()), Learners: conv(c.GetLearners()),
		OldVoters: conv(c.GetOldVoters()), OldLearners: conv(c.GetOldLearners())})
}

// Proto is c as a log entry or a snapshot carries it.
func (c Config) Proto() *raftpb.Configuration {
	conv := func(ps []Peer) []*raftpb.Peer {
		if len(ps) == 0 {
			return nil
		}
		out := make([]*raftpb.Peer, len(ps))
		for i, p := range ps {
			out[i] = &raftpb.Peer{Id: p.ID, Addr: p.Addr, Promote: p.Promote, Priority: p.Priority, Since: p.Since}
		}
		return out
	}
	return &raftpb.Configuration{Voters: conv(c.Voters), Learners: conv(c.Learners),
		OldVoters: conv(c.OldVoters), OldLearners: conv(c.OldLearners)}
}

// Decode reads the configuration of a configuration entry's data and
// checks it: each half must be a valid configuration (Validate), which a
// leader's entry always is. An error means the entry is damaged or was
// not written by a leader of this group.
func Decode(data []byte) (Config, error) {
	var pc raftpb.Configuration
	if err := proto.Unmarshal(data, &pc); err != nil {
		return Config{}, fmt.Errorf("%w: configuration entry: %w", ErrInvalid, err)
	}
	c := FromProto(&pc)
	if err := Validate(Config{Voters: c.Voters, Learners: c.Learners}); err != nil {
		return Config{}, fmt.Errorf("confchange: configuration entry: %w", err)
	}
	if c.Joint() {
		if err := Validate(Config{Voters: c.OldVoters, Learners: c.OldLearners}); err != nil {
			return Config{}, fmt.Errorf("confchange: configuration entry (old half): %w", err)
		}
	} else if len(c.OldLearners) > 0 {
		return Config{}, fmt.Errorf("%w: configuration entry with old learners but no old voters", ErrInvalid)
	}
	return c, nil
}

// Encode is the data of a configuration entry stating c.
func Encode(c Config) []byte {
	b, err := proto.Marshal(c.Proto())
	if err != nil {
		panic(fmt.Sprintf("confchange: marshal a configuration: %v", err)) // cannot fail for this message
	}
	return b
}
