package chaos

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// traceHandler writes the framework's logs, DEBUG included, into the
// readable trace, stamped with virtual time: the nodes' decisions (pre-vote,
// campaign, votes granted, leadership, truncations) between the messages.
type traceHandler struct {
	w     io.Writer
	now   func() time.Duration
	attrs []slog.Attr
}

func (h *traceHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *traceHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%12.6fs decide ", h.now().Seconds())
	for _, a := range h.attrs {
		if a.Key == "id" {
			fmt.Fprintf(&b, "%s: ", a.Value)
		}
	}
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	b.WriteByte('\n')
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &traceHandler{w: h.w, now: h.now, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *traceHandler) WithGroup(string) slog.Handler { return h }
