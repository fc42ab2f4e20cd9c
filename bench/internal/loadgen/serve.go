package loadgen

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// System is one member process's library, as Serve drives it. Serve calls
// its methods from one goroutine, one at a time.
type System interface {
	// Addr is the address the other members reach this process at.
	Addr() string
	// Version names the library and its version ("dragonboat v4.0.0-…").
	Version() string
	// Start starts this process's nodes of cmd.Groups groups of
	// cmd.Peers.
	Start(cmd Command) error
	// Status is every node's view of its group.
	Status() []NodeStatus
	// Targets returns this process's nodes of groups, which it must
	// lead, for goroutine clients.
	Targets(groups []string) ([]Target, error)
}

// Runner is a System that runs some workloads its own way (asyncraft: the
// callback clients, and its log counters). It is given the RunConfig
// Serve built, without Launch, and usually ends in Run.
type Runner interface {
	Run(cmd Command, cfg RunConfig) (*Result, error)
}

// Loader is a System that starts background loads its own way (asyncraft:
// the callback clients too). Launch returns the function that starts
// spec's clients on groups, which this process leads.
type Loader interface {
	Launch(spec Spec, groups []string) (func(Sink), error)
}

// Commander is a System with commands of its own (asyncraft: snapshot,
// fill, recovery). Serve passes it every command it does not know; it
// answers on emit, from Serve's goroutine or later from another, and
// reports whether it knew the command. An error is answered as an error
// event.
type Commander interface {
	Command(cmd Command, emit func(Event)) (handled bool, err error)
}

// ErrorNamer is a System that names its failed operations (see ErrorName).
type ErrorNamer interface {
	ErrorName(error) string
}

// Serve runs the member loop: it announces sys (ready), then answers the
// commands on in with events on out until quit, or until in ends (the
// orchestrator is gone).
func Serve(sys System, in io.Reader, out io.Writer) error {
	em := NewEmitter(out)
	gone := make(chan struct{})
	cmds := make(chan Command)
	go readCommands(in, cmds, gone, em)
	em.Emit(Event{Ev: "ready", PID: os.Getpid(), Addr: sys.Addr(), Version: sys.Version()})
	fail := func(err error) { em.Emit(Event{Ev: "error", Err: err.Error()}) }
	var bg *Meter // the background load, if one runs
	defer func() {
		if bg != nil {
			bg.Stop(0)
		}
	}()
	for cmd := range cmds {
		switch cmd.Op {
		case "start":
			if err := sys.Start(cmd); err != nil {
				fail(err)
				continue
			}
			em.Emit(Event{Ev: "started"})
		case "status":
			em.Emit(Event{Ev: "status", Nodes: sys.Status()})
		case "prefill":
			if cmd.Spec == nil {
				fail(errors.New("prefill needs a spec"))
				continue
			}
			targets, err := sys.Targets(cmd.Drive)
			if err == nil {
				err = Prefill(targets, *cmd.Spec)
			}
			if err != nil {
				fail(err)
				continue
			}
			em.Emit(Event{Ev: "prefilled"})
		case "run":
			res, err := run(sys, cmd, gone, em)
			if err != nil {
				fail(err)
				continue
			}
			em.Emit(Event{Ev: "result", Result: res})
		case "profile":
			if cmd.Spec != nil && cmd.Profile != "" {
				go profileWindow(cmd)
			}
		case "load":
			if bg != nil {
				fail(errors.New("a background load runs already"))
				continue
			}
			m, err := startLoad(sys, cmd)
			if err != nil {
				fail(err)
				continue
			}
			bg = m
			em.Emit(Event{Ev: "loading"})
		case "cut", "unload":
			if bg == nil {
				fail(fmt.Errorf("%s: no background load runs", cmd.Op))
				continue
			}
			var unfinished int64
			if cmd.Op == "unload" {
				wait := cmd.Stall
				if wait <= 0 {
					wait = 30 * time.Second
				}
				unfinished = bg.Stop(wait)
			}
			res, err := bg.Cut()
			if err != nil {
				fail(err)
				continue
			}
			res.Unfinished = unfinished
			if cmd.Op == "unload" {
				bg = nil
			}
			em.Emit(Event{Ev: "cut", Result: res})
		case "quit":
			return nil
		default:
			if c, ok := sys.(Commander); ok {
				handled, err := c.Command(cmd, em.Emit)
				if err != nil {
					fail(err)
				}
				if handled {
					continue
				}
			}
			fail(fmt.Errorf("unknown command %q", cmd.Op))
		}
	}
	return nil
}

// startLoad starts cmd's background load: Spec.Clients clients on the
// groups of cmd.Drive, in the system's own way if it is a Loader,
// goroutine clients otherwise.
func startLoad(sys System, cmd Command) (*Meter, error) {
	if cmd.Spec == nil || len(cmd.Drive) == 0 || cmd.Spec.Clients < 1 {
		return nil, errors.New("load needs a spec with clients and groups to drive")
	}
	var launch func(Sink)
	if l, ok := sys.(Loader); ok {
		var err error
		if launch, err = l.Launch(*cmd.Spec, cmd.Drive); err != nil {
			return nil, err
		}
	} else {
		if c := cmd.Spec.Client; c != "" && c != ClientGoroutine {
			return nil, fmt.Errorf("%s has no %s clients", sys.Version(), c)
		}
		targets, err := sys.Targets(cmd.Drive)
		if err != nil {
			return nil, err
		}
		var name func(error) string
		if n, ok := sys.(ErrorNamer); ok {
			name = n.ErrorName
		}
		launch = GoroutineClients(targets, name)
	}
	m := NewMeter(*cmd.Spec, cmd.Drive)
	launch(m)
	return m, nil
}

func run(sys System, cmd Command, gone <-chan struct{}, em *Emitter) (*Result, error) {
	if cmd.Spec == nil || len(cmd.Drive) == 0 {
		return nil, errors.New("run needs a spec and groups to drive")
	}
	cfg := RunConfig{
		Spec:    *cmd.Spec,
		Groups:  cmd.Drive,
		Start:   time.Now().Add(time.Until(time.Unix(0, cmd.Start))), // wall clock → monotonic
		Stall:   cmd.Stall,
		Profile: cmd.Profile,
		Gone:    gone,
		Progress: func(ok, failed uint64) {
			em.Emit(Event{Ev: "progress", Ops: ok, Errs: failed})
		},
	}
	if r, ok := sys.(Runner); ok {
		return r.Run(cmd, cfg)
	}
	if c := cfg.Spec.Client; c != "" && c != ClientGoroutine {
		return nil, fmt.Errorf("%s has no %s clients", sys.Version(), c)
	}
	targets, err := sys.Targets(cmd.Drive)
	if err != nil {
		return nil, err
	}
	var name func(error) string
	if n, ok := sys.(ErrorNamer); ok {
		name = n.ErrorName
	}
	cfg.Launch = GoroutineClients(targets, name)
	return Run(cfg)
}
