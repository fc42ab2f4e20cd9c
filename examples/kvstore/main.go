// Command kvstore is a replicated key-value store on asyncraft, with an
// HTTP API. Each process runs one node:
//
//	kvstore -id n1 -addr 127.0.0.1:7001 -http 127.0.0.1:8001 -data /tmp/kv/n1 \
//	    -peers n1=127.0.0.1:7001,n2=127.0.0.1:7002,n3=127.0.0.1:7003 \
//	    -peer-http n1=127.0.0.1:8001,n2=127.0.0.1:8002,n3=127.0.0.1:8003 \
//	    -tls-cert n1.pem -tls-key n1-key.pem -tls-ca ca.pem
//
// Commands (get, put, append, delete) are msgpack-encoded log entries; every
// operation, reads included, goes through the log. See Server for the API
// and README.md for a walk-through; ./cli is a client that follows leader
// hints.
//
// A node joins a running group with -join-identity (the cluster_identity
// of a member's GET /status); then, on the leader, POST /membership adds
// it (see membership.go and README.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/asyncraft/asyncraft"
	"github.com/asyncraft/asyncraft/logmgr"
)

// group is the Raft group every kvstore node belongs to.
const group = "kv"

type config struct {
	id, addr, http, data string
	peers                []asyncraft.Peer
	peerHTTP             map[string]string
	timeout              time.Duration
	electionTimeout      time.Duration
	snapshotEntries      uint64
	// snapshotTrailing is NodeOptions.SnapshotTrailingEntries,
	// snapshotRate HostOptions.SnapshotBytesPerSecond and walSegment
	// HostOptions.WALSegmentSize (each 0: the library's default).
	snapshotTrailing uint64
	snapshotRate     int64
	walSegment       int64
	// rejoinTerm is NodeOptions.RejoinTerm: restart a wiped member.
	rejoinTerm uint64
	// joinIdentity is NodeOptions.JoinIdentity: a new node joining the
	// group of that identity. catchUpTimeout is NodeOptions.CatchUpTimeout
	// (0: the library's default).
	joinIdentity   uint64
	catchUpTimeout time.Duration
	logLevel       slog.Level
	staleReads     bool
	// tls, if set, makes the Raft port mutual TLS (-tls-*).
	tls *asyncraft.TLSFiles
	// limits are the -max-* flags, httpOpts the -http-* flags.
	limits   Limits
	httpOpts HTTPOptions
}

// maxValueLimit bounds -max-value-bytes: a command must fit in a message
// between hosts (asyncraft.DefaultMaxMessageBytes less 64 KiB), with room
// for its key and encoding.
const maxValueLimit = asyncraft.DefaultMaxMessageBytes - 1<<20

func main() {
	cfg, err := parseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvstore:", err)
		os.Exit(2)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "kvstore:", err)
		os.Exit(1)
	}
}

func parseFlags(fs *flag.FlagSet, args []string) (config, error) {
	var (
		cfg      config
		peers    = fs.String("peers", "", "every node of the group: id=host:port,... (this node's Raft address included); with -join-identity, the group's members as far as known (may be empty)")
		join     = fs.String("join-identity", "", "join a running group as a new node: the group's cluster identity, cluster_identity of a member's GET /status (0x and 16 hex digits, or decimal); then add the node on the leader (POST /membership). Give it at every start of this node")
		peerHTTP = fs.String("peer-http", "", "HTTP addresses of the nodes, for leader hints: id=host:port,...")
		level    = fs.String("log-level", "info", "log level: debug, info, warn, error")
	)
	fs.StringVar(&cfg.id, "id", "", "this node's id (required)")
	fs.StringVar(&cfg.addr, "addr", "", "this node's Raft address, host:port (required)")
	fs.StringVar(&cfg.http, "http", "", "the HTTP API's address, host:port (required)")
	fs.StringVar(&cfg.data, "data", "", "this node's data directory (required)")
	fs.DurationVar(&cfg.timeout, "timeout", DefaultTimeout, "how long a request waits for its command to be applied before answering 504 EUNKNOWN")
	fs.DurationVar(&cfg.electionTimeout, "election-timeout", asyncraft.DefaultElectionTimeout, "Raft election timeout")
	fs.Uint64Var(&cfg.snapshotEntries, "snapshot-entries", 0, "take a snapshot every this many applied entries (0: only on POST /snapshot); after each one the log is compacted")
	fs.Uint64Var(&cfg.snapshotTrailing, "snapshot-trailing", 0, fmt.Sprintf("entries the log keeps before the newest snapshot, so that a follower lagging by less catches up without an install (0: %d)", asyncraft.DefaultSnapshotTrailingEntries))
	fs.Int64Var(&cfg.snapshotRate, "snapshot-rate", 0, fmt.Sprintf("bytes per second of snapshots this node sends to followers being installed (0: %d; negative: no cap)", asyncraft.DefaultSnapshotBytesPerSecond))
	fs.Int64Var(&cfg.walSegment, "wal-segment-bytes", 0, fmt.Sprintf("size of each log segment file; compaction drops whole segments (0: %d; at least %d)", logmgr.DefaultSegmentSize, logmgr.MinSegmentSize))
	fs.Uint64Var(&cfg.rejoinTerm, "rejoin-term", 0, "restart this member after its data directory was wiped, under its old -id: the highest term among the other members (their GET /status), every one of them up; the node then votes only in later terms and catches up from the leader. Only with an empty -data; leave it off on later starts (docs/snapshots.md)")
	fs.DurationVar(&cfg.catchUpTimeout, "catch-up-timeout", 0, "how long a new voter may make no progress (its log does not grow, no snapshot is being installed on it) before the leader fails the change with ETIMEDOUT, the node staying a learner (0: 20 election timeouts)")
	fs.BoolVar(&cfg.staleReads, "stale-reads", false, "answer GET from this node's state, without the log: faster but NOT linearizable (a follower or a deposed leader answers with old data); for demonstrations and the chaos test's self-check")

	var tlsFiles asyncraft.TLSFiles
	fs.StringVar(&tlsFiles.CertFile, "tls-cert", "", "PEM certificate of this node for mutual TLS on the Raft port (with -tls-key and -tls-ca; serverAuth and clientAuth usages, the -addr host among its SANs)")
	fs.StringVar(&tlsFiles.KeyFile, "tls-key", "", "PEM private key of -tls-cert")
	fs.StringVar(&tlsFiles.CAFile, "tls-ca", "", "PEM certificate of the CA that signs every node's certificate")

	cfg.limits = DefaultLimits
	fs.Int64Var(&cfg.limits.MaxKeyBytes, "max-key-bytes", DefaultMaxKeyBytes, fmt.Sprintf("largest key of a put or an append (at most %d)", maxKeyBytes))
	fs.Int64Var(&cfg.limits.MaxValueBytes, "max-value-bytes", DefaultMaxValueBytes, "largest value, after an append too (413 beyond)")
	fs.Int64Var(&cfg.limits.MaxStoreBytes, "max-store-bytes", DefaultMaxStoreBytes, fmt.Sprintf("largest store: the sum over the keys of key + value + %d bytes (507 beyond)", entryOverhead))

	cfg.httpOpts = DefaultHTTPOptions
	fs.DurationVar(&cfg.httpOpts.ReadHeaderTimeout, "http-read-header-timeout", DefaultReadHeaderTimeout, "HTTP: time allowed to send a request's headers (a connection that sends nothing is closed after it)")
	fs.DurationVar(&cfg.httpOpts.ReadTimeout, "http-read-timeout", DefaultReadTimeout, "HTTP: time allowed to send a whole request, body included")
	fs.DurationVar(&cfg.httpOpts.WriteTimeout, "http-write-timeout", DefaultWriteTimeout, "HTTP: time allowed from a request's headers to the end of its response (more than -timeout)")
	fs.DurationVar(&cfg.httpOpts.IdleTimeout, "http-idle-timeout", DefaultIdleTimeout, "HTTP: how long an idle keep-alive connection stays open")
	fs.IntVar(&cfg.httpOpts.MaxHeaderBytes, "http-max-header-bytes", DefaultMaxHeaderBytes, "HTTP: largest request headers, URL included")
	fs.IntVar(&cfg.httpOpts.MaxConns, "http-max-conns", DefaultMaxConns, "HTTP: most connections open at once; beyond, new ones wait in the kernel's backlog")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if *join != "" {
		id, err := parseIdentity(*join)
		if err != nil {
			return cfg, fmt.Errorf("-join-identity: %w", err)
		}
		cfg.joinIdentity = id
		if cfg.rejoinTerm != 0 {
			return cfg, errors.New("-join-identity and -rejoin-term are exclusive: a joining node is new to the group (a new -id); -rejoin-term restarts a member that lost its data under its old -id")
		}
	}
	if cfg.id == "" || cfg.addr == "" || cfg.http == "" || cfg.data == "" || (*peers == "" && cfg.joinIdentity == 0) {
		return cfg, errors.New("-id, -addr, -http, -data and -peers (unless -join-identity) are required")
	}
	if cfg.catchUpTimeout < 0 {
		return cfg, errors.New("-catch-up-timeout must not be negative")
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.timeout <= 0 {
		return cfg, errors.New("-timeout must be positive")
	}
	if cfg.walSegment != 0 && (cfg.walSegment < logmgr.MinSegmentSize || cfg.walSegment > logmgr.MaxSegmentSize) {
		return cfg, fmt.Errorf("-wal-segment-bytes %d is not in [%d, %d]", cfg.walSegment, logmgr.MinSegmentSize, logmgr.MaxSegmentSize)
	}
	switch n := countSet(tlsFiles.CertFile, tlsFiles.KeyFile, tlsFiles.CAFile); n {
	case 0:
	case 3:
		cfg.tls = &tlsFiles
	default:
		return cfg, errors.New("-tls-cert, -tls-key and -tls-ca go together: give all three, or none for plain TCP")
	}
	if err := cfg.limits.validate(); err != nil {
		return cfg, err
	}
	if err := cfg.httpOpts.validate(cfg.timeout); err != nil {
		return cfg, err
	}
	if *peers != "" {
		pm, err := parseIDMap("-peers", *peers)
		if err != nil {
			return cfg, err
		}
		for _, id := range pm.order {
			cfg.peers = append(cfg.peers, asyncraft.Peer{ID: id, Addr: pm.m[id]})
		}
		if pm.m[cfg.id] == "" && cfg.joinIdentity == 0 {
			return cfg, fmt.Errorf("-peers does not list this node (%s)", cfg.id)
		}
	}
	cfg.peerHTTP = map[string]string{}
	if *peerHTTP != "" {
		hm, err := parseIDMap("-peer-http", *peerHTTP)
		if err != nil {
			return cfg, err
		}
		cfg.peerHTTP = hm.m
	}
	if err := cfg.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return cfg, fmt.Errorf("-log-level: %w", err)
	}
	return cfg, nil
}

func countSet(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

// validate checks the -max-* flags.
func (l Limits) validate() error {
	switch {
	case l.MaxKeyBytes < 1 || l.MaxKeyBytes > maxKeyBytes:
		return fmt.Errorf("-max-key-bytes %d is not in [1, %d]", l.MaxKeyBytes, maxKeyBytes)
	case l.MaxValueBytes < 1 || l.MaxValueBytes > maxValueLimit:
		return fmt.Errorf("-max-value-bytes %d is not in [1, %d] (a command must fit in a message between hosts)", l.MaxValueBytes, maxValueLimit)
	case l.MaxStoreBytes < 1:
		return fmt.Errorf("-max-store-bytes %d is not positive", l.MaxStoreBytes)
	}
	return nil
}

type idMap struct {
	m     map[string]string
	order []string
}

// parseIDMap parses id=host:port,...
func parseIDMap(flagName, s string) (idMap, error) {
	out := idMap{m: map[string]string{}}
	for _, p := range strings.Split(s, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || id == "" || addr == "" {
			return out, fmt.Errorf("%s: %q is not id=host:port", flagName, p)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return out, fmt.Errorf("%s: %q: %w", flagName, p, err)
		}
		if _, dup := out.m[id]; dup {
			return out, fmt.Errorf("%s: %s is listed twice", flagName, id)
		}
		out.m[id] = addr
		out.order = append(out.order, id)
	}
	return out, nil
}

// startNode starts the host and the node of cfg (Raft only, no HTTP).
func startNode(cfg config, hostOpts asyncraft.HostOptions, log *slog.Logger) (*asyncraft.Host, *asyncraft.Node, *Store, error) {
	host, err := asyncraft.NewHost(hostOpts)
	if err != nil {
		return nil, nil, nil, err
	}
	store := NewStore(cfg.id, log)
	node, err := host.StartNode(asyncraft.NodeOptions{
		Group: group, ID: cfg.id, Peers: cfg.peers, StateMachine: store,
		ElectionTimeout: cfg.electionTimeout, SnapshotEntries: cfg.snapshotEntries, SnapshotTrailingEntries: cfg.snapshotTrailing,
		RejoinTerm: cfg.rejoinTerm, JoinIdentity: cfg.joinIdentity, CatchUpTimeout: cfg.catchUpTimeout,
	})
	if err != nil {
		host.Close(context.Background())
		return nil, nil, nil, err
	}
	return host, node, store, nil
}

// hostOptions returns the options of cfg's host.
func hostOptions(cfg config, log *slog.Logger) asyncraft.HostOptions {
	return asyncraft.HostOptions{Addr: cfg.addr, DataDir: cfg.data, Logger: log, TLS: cfg.tls,
		SnapshotBytesPerSecond: cfg.snapshotRate, WALSegmentSize: cfg.walSegment}
}

// run runs one node and its HTTP API until SIGINT or SIGTERM.
func run(cfg config) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	raftLog := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: max(cfg.logLevel, slog.LevelWarn)}))
	// Listen first: a port in use fails before the node starts.
	ln, err := net.Listen("tcp", cfg.http)
	if err != nil {
		return err
	}
	host, node, store, err := startNode(cfg, hostOptions(cfg, raftLog), log)
	if err != nil {
		ln.Close()
		return err
	}
	api := NewServerWithTimeout(node, store, cfg.peerHTTP, cfg.timeout)
	api.maxTimeout = max(cfg.httpOpts.WriteTimeout-time.Second, cfg.timeout)
	api.staleReads = cfg.staleReads
	api.limits = cfg.limits
	if cfg.staleReads {
		log.Warn("kvstore: -stale-reads: reads are served from this node's state and are not linearizable")
	}
	srv, lim := newHTTPServer(api.Handler(), ln, cfg.httpOpts)
	api.conns = lim
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lim) }()
	log.Info("kvstore: serving", "id", cfg.id, "raft", host.Addr(), "tls", cfg.tls != nil, "http", ln.Addr().String(), "data", cfg.data, "pid", os.Getpid(),
		"cluster identity", formatIdentity(node.ClusterIdentity()), "joining", cfg.joinIdentity != 0)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	var runErr error
	select {
	case sig := <-stop:
		log.Info("kvstore: shutting down", "id", cfg.id, "signal", sig.String())
	case runErr = <-serveErr:
	}
	signal.Stop(stop)
	// Let in-flight requests finish (they wait for their commands), then
	// stop the node.
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout+time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := host.Close(ctx2); err != nil {
		runErr = errors.Join(runErr, err)
	}
	log.Info("kvstore: stopped", "id", cfg.id)
	return runErr
}

// NewServerWithTimeout is NewServer with a request timeout.
func NewServerWithTimeout(node raftNode, store *Store, peerHTTP map[string]string, timeout time.Duration) *Server {
	s := NewServer(node, store, peerHTTP)
	s.timeout = timeout
	return s
}
