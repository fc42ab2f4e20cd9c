package protoactor

import (
	"context"
	"log/slog"
	"strings"
)

// minLevelHandler drops records below min before they reach the wrapped
// handler. protoactor logs at INFO for routine events (every throttled burst
// of dead letters, "actor system started", de-duplicated requests), which
// would drown a node's own logs; its logger is wrapped in one of these at
// WARN.
type minLevelHandler struct {
	min slog.Level
	h   slog.Handler
	// malformed, if set, is called when protoactor reports a message from
	// another host that did not decode.
	malformed func()
}

func (m minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}

func (m minLevelHandler) Handle(ctx context.Context, r slog.Record) error {
	if m.malformed != nil && strings.HasPrefix(r.Message, "EndpointReader failed to deserialize") {
		m.malformed()
	}
	if routine(r.Message) {
		// A peer going away and coming back is routine for a replicated
		// system; protoactor reports it as an error.
		r.Level = slog.LevelDebug
	}
	if r.Level < m.min {
		return nil
	}
	return m.h.Handle(ctx, r)
}

// routine reports whether a protoactor message describes a peer being
// unreachable, which the protocol above handles by design.
func routine(msg string) bool {
	return strings.HasPrefix(msg, "EndpointWriter lost connection") ||
		strings.HasPrefix(msg, "EndpointWriter failed to connect") ||
		strings.HasPrefix(msg, "EndpointWriter failed to create receive stream") ||
		strings.HasPrefix(msg, "EndpointWriter failed to send connect request") ||
		strings.HasPrefix(msg, "EndpointWriter failed to receive connect response") ||
		strings.HasPrefix(msg, "EndpointReader failed to read")
}

func (m minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevelHandler{min: m.min, h: m.h.WithAttrs(attrs), malformed: m.malformed}
}

func (m minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{min: m.min, h: m.h.WithGroup(name), malformed: m.malformed}
}
