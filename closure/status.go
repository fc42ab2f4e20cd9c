// Package closure holds what asyncraft reports back to its users: the
// [Status] of an operation with its [Code], the [Closure] that receives it,
// exactly-once completion ([Guard]) and the [Executor] that runs user
// callbacks away from the framework's actors.
//
// Codes follow SOFAJRaft's where they mean the same thing. A task's outcome
// never lies about whether its entry may still be applied:
//
//   - failures before the task's entry was appended to the log (EPERM,
//     EBUSY, ESTALE, ESHUTDOWN, EINVAL, and ESTATEMACHINE, EIO, ENOSPC or
//     EINTERNAL when the node failed first) are definite: the command was
//     not and will not be applied;
//   - ENEWLEADER is definite too: a different entry was committed at the
//     task's index, so the task's entry can never be applied;
//   - EUNKNOWN means the entry was appended but the node stopped or failed
//     (or the caller stopped waiting) before learning its fate here: it may
//     or may not be applied. An entry committed but not yet applied when
//     its node fails gets EUNKNOWN too: the rest of the group applies it,
//     and so may the node once restarted. Retry only if the command is
//     idempotent. [Status.Indeterminate] tells these outcomes apart.
package closure

import (
	"errors"
	"fmt"
)

// Code classifies the outcome of an operation.
type Code int

const (
	// OK: the operation succeeded (for a task: its entry was applied).
	OK Code = iota
	// EPERM: this node is not the leader. Status.Leader names the leader
	// when it is known.
	EPERM
	// EBUSY: a bounded queue is full; nothing was done. Retry later.
	EBUSY
	// EAGAIN: the node cannot serve this yet (for example a new leader
	// before an entry of its term is committed). Retry.
	EAGAIN
	// ETIMEDOUT: the operation did not complete in time.
	ETIMEDOUT
	// ESHUTDOWN: the node is shutting down or has shut down; the task's
	// entry was never appended.
	ESHUTDOWN
	// ESTATEMACHINE: the state machine failed; the node is in error.
	ESTATEMACHINE
	// EINVAL: the request was invalid.
	EINVAL
	// EINTERNAL: an internal error (a bug, or a failed storage); the node
	// is in error.
	EINTERNAL
	// EIO: storage failed; the node is in error.
	EIO
	// ENOSPC: the disk is full; the node is in error.
	ENOSPC
	// ECANCELED: the caller canceled the operation before it was
	// submitted. Reserved: nothing in asyncraft produces it yet (a
	// canceled context in ApplyWait or ReadBarrier returns the context's
	// error, wrapped with ErrUnknownOutcome for ApplyWait).
	ECANCELED
	// ESTALE: the task's ExpectedTerm is not the leader's current term.
	ESTALE
	// ENEWLEADER: a different entry was committed at the task's index; the
	// task's entry will never be applied.
	ENEWLEADER
	// EUNKNOWN: the task's entry was appended, but its fate is unknown
	// (the node stopped, or the caller stopped waiting, before it was
	// applied or overwritten).
	EUNKNOWN
	numCodes
)

var codeNames = [numCodes]string{
	OK: "OK", EPERM: "EPERM", EBUSY: "EBUSY", EAGAIN: "EAGAIN", ETIMEDOUT: "ETIMEDOUT",
	ESHUTDOWN: "ESHUTDOWN", ESTATEMACHINE: "ESTATEMACHINE", EINVAL: "EINVAL",
	EINTERNAL: "EINTERNAL", EIO: "EIO", ENOSPC: "ENOSPC", ECANCELED: "ECANCELED",
	ESTALE: "ESTALE", ENEWLEADER: "ENEWLEADER", EUNKNOWN: "EUNKNOWN",
}

func (c Code) String() string {
	if c >= 0 && c < numCodes {
		return codeNames[c]
	}
	return fmt.Sprintf("Code(%d)", int(c))
}

// Status is the outcome of an operation: a Code, a human-readable message
// and, with EPERM, the id of the leader if this node knows it.
type Status struct {
	Code   Code
	Msg    string
	Leader string
}

// StatusOK is the successful Status.
var StatusOK = Status{}

// Newf returns a Status with the given code and formatted message.
func Newf(code Code, format string, args ...any) Status {
	return Status{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// NotLeader returns the EPERM status naming leader ("" if unknown).
func NotLeader(leader string) Status {
	if leader == "" {
		return Status{Code: EPERM, Msg: "not the leader; no leader known"}
	}
	return Status{Code: EPERM, Msg: "not the leader; the leader is " + leader, Leader: leader}
}

// OK reports whether the status is OK.
func (s Status) OK() bool { return s.Code == OK }

// Indeterminate reports whether the operation may or may not have taken
// effect (EUNKNOWN, ETIMEDOUT). Every other non-OK outcome of a task is
// definite: its command was not and will not be applied.
func (s Status) Indeterminate() bool { return s.Code == EUNKNOWN || s.Code == ETIMEDOUT }

func (s Status) String() string {
	if s.Msg == "" {
		return s.Code.String()
	}
	return s.Code.String() + ": " + s.Msg
}

// Err returns nil for an OK status and an *Error otherwise.
func (s Status) Err() error {
	if s.Code == OK {
		return nil
	}
	return &Error{Status: s}
}

// Error is a non-OK Status as an error. errors.Is matches it against the
// sentinel errors of this package by code:
//
//	if errors.Is(err, closure.ErrNotLeader) { ... st.Leader ... }
type Error struct {
	Status Status
}

func (e *Error) Error() string { return "asyncraft: " + e.Status.String() }

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Status.Code == e.Status.Code
	}
	return false
}

// StatusOf extracts the Status carried by err: OK for nil, the Status of an
// *Error, and EINTERNAL with the error's text otherwise.
func StatusOf(err error) Status {
	if err == nil {
		return StatusOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return Status{Code: EINTERNAL, Msg: err.Error()}
}

// Sentinel errors, one per code, for errors.Is.
var (
	ErrNotLeader      error = &Error{Status{Code: EPERM, Msg: "not the leader"}}
	ErrBusy           error = &Error{Status{Code: EBUSY, Msg: "busy"}}
	ErrAgain          error = &Error{Status{Code: EAGAIN, Msg: "try again"}}
	ErrTimeout        error = &Error{Status{Code: ETIMEDOUT, Msg: "timed out"}}
	ErrShutdown       error = &Error{Status{Code: ESHUTDOWN, Msg: "shut down"}}
	ErrStateMachine   error = &Error{Status{Code: ESTATEMACHINE, Msg: "state machine failed"}}
	ErrInvalid        error = &Error{Status{Code: EINVAL, Msg: "invalid argument"}}
	ErrInternal       error = &Error{Status{Code: EINTERNAL, Msg: "internal error"}}
	ErrIO             error = &Error{Status{Code: EIO, Msg: "I/O error"}}
	ErrNoSpace        error = &Error{Status{Code: ENOSPC, Msg: "no space left on device"}}
	ErrCanceled       error = &Error{Status{Code: ECANCELED, Msg: "canceled"}}
	ErrStale          error = &Error{Status{Code: ESTALE, Msg: "term mismatch"}}
	ErrNewLeader      error = &Error{Status{Code: ENEWLEADER, Msg: "entry overwritten by a new leader"}}
	ErrUnknownOutcome error = &Error{Status{Code: EUNKNOWN, Msg: "outcome unknown"}}
)
