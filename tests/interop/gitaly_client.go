// gitaly_client: a stand-in for GitLab's Go clients of Gitaly (Workhorse and
// gitlab-shell), built from Debian's grpc-go 1.33, protobuf and
// hashicorp/yamux, so the interop tests drive our server the way the real
// clients do. It dials like gitaly's client.DialSidechannel: the transport
// credentials (plain, or TLS) are wrapped by a handshake that writes the
// 11-byte "backchannel" magic, starts a yamux client session on the
// connection, hands yamux stream 1 to gRPC and accepts the streams the
// server opens: each must start with "sidechannel" and an 8-byte big-endian
// id, which is looked up in a registry of waiting callbacks; a known id is
// acknowledged with "ok" and the stream is given to the callback. Request
// bytes going to the server are cut into 4-hex-digit frames and ended with
// "0000". Messages are encoded by hand with protowire and sent through a
// codec that passes bytes through, so no generated Go code is needed.
//
// Usage: gitaly_client [global flags] MODE [mode flags]
//
//	global: -addr unix:PATH|tcp://HOST:PORT|tls://HOST:PORT  -token SECRET
//	        -ca FILE -server-name NAME -plain (no multiplexing) -timeout DUR
//	modes:  unary-health, info-refs, http-upload-pack, ssh-upload-pack,
//	        ssh-receive-pack, post-receive-pack (see usage())
//
// Errors go to stderr as "gitaly_client: MODE: rpc error: code = X desc = Y"
// and the exit status is 1 (ssh-receive-pack exits with git's status).
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	backchannelMagic = "backchannel"
	sidechannelMagic = "sidechannel"
	sidechannelKey   = "gitaly-sidechannel-id"
	// largest frame the client writes, length prefix included
	maxFrame = 65520
	// time allowed for the "ok" acknowledgement, as upstream
	ackTimeout = 5 * time.Second
)

var errCallbackDidNotRun = errors.New("sidechannel: callback de-registered without having run")

// ---------------------------------------------------------------------------
// raw protobuf messages

// rawMsg is a serialized protobuf message; rawCodec passes it through.
type rawMsg struct{ b []byte }

type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	m, ok := v.(*rawMsg)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return m.b, nil
}

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	m, ok := v.(*rawMsg)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	m.b = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// msgBuilder appends protobuf fields in order.
type msgBuilder struct{ b []byte }

func (m *msgBuilder) str(num protowire.Number, s string) *msgBuilder {
	if s != "" {
		m.b = protowire.AppendTag(m.b, num, protowire.BytesType)
		m.b = protowire.AppendString(m.b, s)
	}
	return m
}

func (m *msgBuilder) bytes(num protowire.Number, p []byte) *msgBuilder {
	m.b = protowire.AppendTag(m.b, num, protowire.BytesType)
	m.b = protowire.AppendBytes(m.b, p)
	return m
}

func (m *msgBuilder) strs(num protowire.Number, ss []string) *msgBuilder {
	for _, s := range ss {
		m.b = protowire.AppendTag(m.b, num, protowire.BytesType)
		m.b = protowire.AppendString(m.b, s)
	}
	return m
}

// fields decodes one level of a message: field number -> list of raw
// values (varints as their value, length-delimited as their bytes).
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	b   []byte
}

func decodeFields(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		f := field{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			f.v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			f.b, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		out = append(out, f)
	}
	return out, nil
}

// repository builds a gitaly.Repository from "storage:relative/path".
func repository(spec, glRepository string) ([]byte, error) {
	i := strings.IndexByte(spec, ':')
	if i <= 0 {
		return nil, fmt.Errorf("repository %q: want storage:relative/path", spec)
	}
	m := &msgBuilder{}
	m.str(2, spec[:i]).str(3, spec[i+1:]).str(6, glRepository)
	return m.b, nil
}

// ---------------------------------------------------------------------------
// sidechannel registry, as gitaly's internal/grpc/sidechannel

type waiter struct {
	id       int64
	reg      *registry
	accept   chan net.Conn
	done     chan struct{}
	err      error
	callback func(*sideConn) error
	// noAck: take the stream but never answer "ok" (bad-input tests)
	noAck bool
}

type registry struct {
	mu      sync.Mutex
	next    int64
	waiters map[int64]*waiter
}

func newRegistry() *registry { return &registry{waiters: map[int64]*waiter{}} }

// register adds a waiter whose callback runs on its own goroutine once the
// server opens the sidechannel with the waiter's id.
func (r *registry) register(cb func(*sideConn) error) *waiter {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := &waiter{id: r.next, reg: r, accept: make(chan net.Conn), done: make(chan struct{}),
		callback: cb}
	r.next++
	r.waiters[w.id] = w
	go func() {
		defer close(w.done)
		w.err = w.run()
	}()
	return w
}

// receive hands a handshaken stream to its waiter; unknown ids close it.
func (r *registry) receive(id int64, c net.Conn) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.waiters[id]
	if !ok {
		c.Close()
		return fmt.Errorf("sidechannel registry: ID %d not registered", id)
	}
	delete(r.waiters, id)
	w.accept <- c
	return nil
}

func (w *waiter) run() error {
	c := <-w.accept
	if c == nil {
		return errCallbackDidNotRun
	}
	defer c.Close()
	if w.noAck {
		// hold the stream silently until the RPC is over
		io.Copy(ioutil.Discard, c)
		return fmt.Errorf("sidechannel: not acknowledged on purpose")
	}
	c.SetWriteDeadline(time.Now().Add(ackTimeout))
	if _, err := c.Write([]byte("ok")); err != nil {
		return err
	}
	c.SetWriteDeadline(time.Time{})
	return w.callback(&sideConn{c: c})
}

// close deregisters the waiter and returns its callback's result
// (errCallbackDidNotRun if the server never opened the sidechannel).
func (w *waiter) close() error {
	w.reg.mu.Lock()
	if _, ok := w.reg.waiters[w.id]; ok {
		delete(w.reg.waiters, w.id)
		close(w.accept)
	}
	w.reg.mu.Unlock()
	<-w.done
	return w.err
}

// sideConn frames writes and turns CloseWrite into the "0000" flush.
type sideConn struct {
	c           net.Conn
	writeClosed bool
	// raw: write bytes unframed (bad-input tests)
	raw bool
}

func (s *sideConn) Read(p []byte) (int, error) { return s.c.Read(p) }

func (s *sideConn) Write(p []byte) (int, error) {
	if s.writeClosed {
		return 0, fmt.Errorf("sidechannel: write into a half-closed connection")
	}
	if s.raw {
		return s.c.Write(p)
	}
	n := 0
	for len(p) > 0 {
		chunk := len(p)
		if chunk > maxFrame-4 {
			chunk = maxFrame - 4
		}
		if _, err := fmt.Fprintf(s.c, "%04x", chunk+4); err != nil {
			return n, err
		}
		if _, err := s.c.Write(p[:chunk]); err != nil {
			return n, err
		}
		n += chunk
		p = p[chunk:]
	}
	return n, nil
}

func (s *sideConn) CloseWrite() error {
	if s.writeClosed {
		return nil
	}
	s.writeClosed = true
	_, err := s.c.Write([]byte("0000"))
	return err
}

// ---------------------------------------------------------------------------
// the multiplexing handshake, as gitaly's backchannel.ClientHandshaker

// plainCreds: no security, the connection as it is.
type plainCreds struct{}

type plainAuth struct{}

func (plainAuth) AuthType() string { return "insecure" }

func (plainCreds) ClientHandshake(_ context.Context, _ string, c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c, plainAuth{}, nil
}
func (plainCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c, plainAuth{}, nil
}
func (plainCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "insecure"}
}
func (p plainCreds) Clone() credentials.TransportCredentials { return p }
func (plainCreds) OverrideServerName(string) error           { return nil }

type muxCreds struct {
	credentials.TransportCredentials
	reg *registry
}

// connStream is yamux stream 1; closing it tears the whole session down.
type connStream struct {
	net.Conn
	sess *yamux.Session
}

func (c *connStream) Close() error {
	c.Conn.Close()
	return c.sess.Close()
}

func muxConfig() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false // gRPC keepalives instead, as upstream
	cfg.LogOutput = ioutil.Discard
	if os.Getenv("GITALY_CLIENT_YAMUX_LOG") != "" {
		cfg.LogOutput = os.Stderr
	}
	return cfg
}

func (m muxCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, auth, err := m.TransportCredentials.ClientHandshake(ctx, authority, raw)
	if err != nil {
		return nil, nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(backchannelMagic)); err != nil {
		return nil, nil, fmt.Errorf("write backchannel magic bytes: %w", err)
	}
	sess, err := yamux.Client(c, muxConfig())
	if err != nil {
		return nil, nil, fmt.Errorf("open multiplexing session: %w", err)
	}
	st, err := sess.Open()
	if err != nil {
		sess.Close()
		return nil, nil, fmt.Errorf("open client stream: %w", err)
	}
	go acceptLoop(sess, m.reg)
	return &connStream{Conn: st, sess: sess}, auth, nil
}

func (m muxCreds) Clone() credentials.TransportCredentials {
	return muxCreds{TransportCredentials: m.TransportCredentials.Clone(), reg: m.reg}
}

// acceptLoop takes the streams the server opens. Upstream runs a gRPC
// server behind a listenmux here; only the sidechannel handshake matters
// for a stand-alone Gitaly, so other streams (Praefect's vote backchannel)
// are closed.
func acceptLoop(sess *yamux.Session, reg *registry) {
	for {
		st, err := sess.Accept()
		if err != nil {
			return
		}
		go func(st net.Conn) {
			hello := make([]byte, len(sidechannelMagic)+8)
			st.SetReadDeadline(time.Now().Add(2 * time.Minute))
			if _, err := io.ReadFull(st, hello); err != nil {
				st.Close()
				return
			}
			st.SetReadDeadline(time.Time{})
			if string(hello[:len(sidechannelMagic)]) != sidechannelMagic {
				logf("server opened a non-sidechannel stream (%q): closed", hello[:11])
				st.Close()
				return
			}
			id := int64(binary.BigEndian.Uint64(hello[len(sidechannelMagic):]))
			if err := reg.receive(id, st); err != nil {
				logf("%v", err)
			}
		}(st)
	}
}

// ---------------------------------------------------------------------------
// v2 token, as gitaly-auth's RPCCredentialsV2

type tokenCreds struct{ secret string }

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(t.secret))
	mac.Write([]byte(ts))
	return map[string]string{"authorization": "Bearer v2." + hex.EncodeToString(mac.Sum(nil)) + "." + ts}, nil
}

func (tokenCreds) RequireTransportSecurity() bool { return false }

// ---------------------------------------------------------------------------
// dialing, as gitaly's client.Dial / DialSidechannel

type options struct {
	addr, token, ca, serverName string
	plain                       bool
	timeout                     time.Duration
	correlationID               string
}

func dial(ctx context.Context, o *options, reg *registry) (*grpc.ClientConn, error) {
	u, err := url.Parse(o.addr)
	if err != nil {
		return nil, fmt.Errorf("invalid connection string %q", o.addr)
	}
	var base credentials.TransportCredentials = plainCreds{}
	var target string
	var opts []grpc.DialOption
	switch u.Scheme {
	case "unix":
		path := strings.TrimPrefix(o.addr, "unix:")
		target = o.addr
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}))
	case "tcp":
		target = u.Host
	case "tls":
		target = u.Host
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.serverName}
		if o.ca != "" {
			pem, err := ioutil.ReadFile(o.ca)
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("no certificate in %s", o.ca)
			}
			cfg.RootCAs = pool
		}
		base = credentials.NewTLS(cfg)
	default:
		return nil, fmt.Errorf("invalid connection string %q", o.addr)
	}
	creds := base
	if !o.plain {
		creds = muxCreds{TransportCredentials: base, reg: reg}
	}
	opts = append(opts,
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, PermitWithoutStream: true}),
		grpc.WithDisableServiceConfig(),
		grpc.WithBlock(),
		grpc.FailOnNonTempDialError(true),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
	)
	if o.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds{o.token}))
	}
	return grpc.DialContext(ctx, target, opts...)
}

// ---------------------------------------------------------------------------
// misbehaviour knobs for the bad-input tests

type misbehave struct {
	mode       string // "", unknown-id, no-ack, no-id, close-mid-pack, exit-mid-pack, no-flush, raw
	afterBytes int64  // for *-mid-pack: response bytes to read first
}

func (mb *misbehave) valid() bool {
	switch mb.mode {
	case "", "unknown-id", "no-ack", "no-id", "close-mid-pack", "exit-mid-pack", "no-flush", "raw":
		return true
	}
	return false
}

// countingWriter counts response bytes and misbehaves after enough of them.
type countingWriter struct {
	w     io.Writer
	n     int64
	mb    *misbehave
	onCut func()
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.mb.mode == "close-mid-pack" || c.mb.mode == "exit-mid-pack" {
		if c.n+int64(len(p)) >= c.mb.afterBytes {
			p = p[:c.mb.afterBytes-c.n]
			c.w.Write(p)
			c.n += int64(len(p))
			c.onCut()
			return len(p), fmt.Errorf("cut mid-pack on purpose after %d bytes", c.n)
		}
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// sidechannelCall registers a waiter, runs invoke with the id in the
// outgoing metadata, then closes the waiter as upstream's callers do.
func sidechannelCall(ctx context.Context, reg *registry, mb *misbehave,
	cb func(*sideConn) error, invoke func(context.Context) error) error {
	w := reg.register(cb)
	w.noAck = mb.mode == "no-ack"
	id := w.id
	if mb.mode == "unknown-id" {
		id += 1 << 40
	}
	if mb.mode != "no-id" {
		ctx = metadata.AppendToOutgoingContext(ctx, sidechannelKey, strconv.FormatInt(id, 10))
	}
	err := invoke(ctx)
	werr := w.close()
	if err != nil {
		if werr != nil && werr != errCallbackDidNotRun {
			logf("sidechannel callback: %v", werr)
		}
		return err
	}
	return werr
}

// ---------------------------------------------------------------------------
// modes

func unaryHealth(ctx context.Context, cc *grpc.ClientConn, args []string) error {
	fs := flag.NewFlagSet("unary-health", flag.ExitOnError)
	service := fs.String("service", "", "service name to check")
	fs.Parse(args)
	req := (&msgBuilder{}).str(1, *service)
	var resp rawMsg
	if err := cc.Invoke(ctx, "/grpc.health.v1.Health/Check", &rawMsg{req.b}, &resp); err != nil {
		return err
	}
	fields, err := decodeFields(resp.b)
	if err != nil {
		return err
	}
	status := uint64(0)
	for _, f := range fields {
		if f.num == 1 && f.typ == protowire.VarintType {
			status = f.v
		}
	}
	names := map[uint64]string{0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
	fmt.Println(names[status])
	if status != 1 {
		return fmt.Errorf("health status %s", names[status])
	}
	return nil
}

type repoFlags struct {
	repo, protocol, glRepository string
	config                       stringList
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func (rf *repoFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&rf.repo, "repo", "", "storage:relative/path")
	fs.StringVar(&rf.protocol, "protocol", "", "git_protocol, e.g. version=2 (or just 2)")
	fs.StringVar(&rf.glRepository, "gl-repository", "", "gl_repository of the Repository")
	fs.Var(&rf.config, "c", "git_config_options entry (repeatable)")
}

func (rf *repoFlags) gitProtocol() string {
	if rf.protocol == "2" || rf.protocol == "v2" {
		return "version=2"
	}
	return rf.protocol
}

func (mb *misbehave) add(fs *flag.FlagSet) {
	fs.StringVar(&mb.mode, "misbehave", "", "unknown-id|no-ack|no-id|close-mid-pack|exit-mid-pack|no-flush|raw")
	fs.Int64Var(&mb.afterBytes, "after-bytes", 1, "response bytes before cutting (*-mid-pack)")
}

// infoRefs: InfoRefsUploadPack or InfoRefsReceivePack, data to stdout.
func infoRefs(ctx context.Context, cc *grpc.ClientConn, args []string) error {
	fs := flag.NewFlagSet("info-refs", flag.ExitOnError)
	var rf repoFlags
	rf.add(fs)
	service := fs.String("service", "upload-pack", "upload-pack or receive-pack")
	fs.Parse(args)
	repo, err := repository(rf.repo, rf.glRepository)
	if err != nil {
		return err
	}
	method := "/gitaly.SmartHTTPService/InfoRefsUploadPack"
	if *service == "receive-pack" {
		method = "/gitaly.SmartHTTPService/InfoRefsReceivePack"
	}
	req := (&msgBuilder{}).bytes(1, repo).strs(2, rf.config).str(3, rf.gitProtocol())
	st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method)
	if err != nil {
		return err
	}
	if err := st.SendMsg(&rawMsg{req.b}); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	for {
		var resp rawMsg
		if err := st.RecvMsg(&resp); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		fields, err := decodeFields(resp.b)
		if err != nil {
			return err
		}
		for _, f := range fields {
			if f.num == 1 {
				if _, err := os.Stdout.Write(f.b); err != nil {
					return err
				}
			}
		}
	}
}

// httpUploadPack: PostUploadPackWithSidechannel as Workhorse runs it:
// write the whole request body, CloseWrite, then copy the response to EOF.
func httpUploadPack(ctx context.Context, cc *grpc.ClientConn, reg *registry, args []string) error {
	fs := flag.NewFlagSet("http-upload-pack", flag.ExitOnError)
	var rf repoFlags
	var mb misbehave
	rf.add(fs)
	mb.add(fs)
	fs.Parse(args)
	if !mb.valid() {
		return fmt.Errorf("unknown -misbehave %q", mb.mode)
	}
	repo, err := repository(rf.repo, rf.glRepository)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cb := func(c *sideConn) error {
		c.raw = mb.mode == "raw"
		out := &countingWriter{w: os.Stdout, mb: &mb, onCut: func() { cutMidPack(&mb, c, cancel) }}
		errC := make(chan error, 1)
		go func() {
			_, err := io.Copy(out, c)
			errC <- err
		}()
		if _, err := io.Copy(c, os.Stdin); err != nil {
			return err
		}
		switch mb.mode {
		case "no-flush":
			c.c.Close() // yamux FIN with no "0000" before it
		case "raw":
			// the test supplied every byte, terminator or not
		default:
			if err := c.CloseWrite(); err != nil {
				return err
			}
		}
		return <-errC
	}
	req := (&msgBuilder{}).bytes(1, repo).strs(2, rf.config).str(3, rf.gitProtocol())
	return sidechannelCall(ctx, reg, &mb, cb, func(ctx context.Context) error {
		var resp rawMsg
		return cc.Invoke(ctx, "/gitaly.SmartHTTPService/PostUploadPackWithSidechannel", &rawMsg{req.b}, &resp)
	})
}

// cutMidPack ends the transfer abruptly: either the sidechannel stream and
// the RPC are dropped, or the whole process dies with the socket open.
func cutMidPack(mb *misbehave, c *sideConn, cancel func()) {
	if mb.mode == "exit-mid-pack" {
		os.Stdout.Sync()
		os.Exit(3)
	}
	c.c.Close()
	cancel()
}

// sshUploadPack: SSHUploadPackWithSidechannel as gitlab-shell runs it
// (stream.ProxyPktLine): stdin is copied with CloseWrite at its EOF, the
// side-band answer is split to stdout/stderr, and the callback returns as
// soon as the answer ends, without waiting for stdin.
func sshUploadPack(ctx context.Context, cc *grpc.ClientConn, reg *registry, args []string) error {
	fs := flag.NewFlagSet("ssh-upload-pack", flag.ExitOnError)
	var rf repoFlags
	var mb misbehave
	rf.add(fs)
	mb.add(fs)
	fs.Parse(args)
	if !mb.valid() {
		return fmt.Errorf("unknown -misbehave %q", mb.mode)
	}
	repo, err := repository(rf.repo, rf.glRepository)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cb := func(c *sideConn) error {
		c.raw = mb.mode == "raw"
		out := &countingWriter{w: os.Stdout, mb: &mb, onCut: func() { cutMidPack(&mb, c, cancel) }}
		request := make(chan error, 1)
		go func() {
			if _, err := io.Copy(c, os.Stdin); err != nil {
				request <- fmt.Errorf("copy request: %w", err)
				return
			}
			switch mb.mode {
			case "no-flush":
				c.c.Close()
			case "raw":
			default:
				if err := c.CloseWrite(); err != nil {
					request <- fmt.Errorf("close request: %w", err)
					return
				}
			}
			request <- nil
		}()
		response := make(chan error, 1)
		go func() { response <- demuxSideband(c, out, os.Stderr) }()
		for {
			select {
			case err := <-response:
				return err
			case err := <-request:
				if err != nil {
					return err
				}
			}
		}
	}
	req := (&msgBuilder{}).bytes(1, repo).strs(2, rf.config).str(3, rf.gitProtocol())
	return sidechannelCall(ctx, reg, &mb, cb, func(ctx context.Context) error {
		var resp rawMsg
		return cc.Invoke(ctx, "/gitaly.SSHService/SSHUploadPackWithSidechannel", &rawMsg{req.b}, &resp)
	})
}

// demuxSideband reads side-band packets (4 hex length, band, data) until
// EOF: band 1 to stdout, band 2 to stderr; empty packets, flushes and other
// bands are errors, as in gitaly's pktline.EachSidebandPacket.
func demuxSideband(r io.Reader, stdout, stderr io.Writer) error {
	hdr := make([]byte, 4)
	buf := make([]byte, 65520)
	for {
		if _, err := io.ReadFull(r, hdr); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("copy response: %w", err)
		}
		n, err := strconv.ParseUint(string(hdr), 16, 16)
		if err != nil {
			return fmt.Errorf("copy response: invalid pkt-line length %q", hdr)
		}
		if n < 5 || n > 65520 {
			return fmt.Errorf("copy response: invalid side-band packet length %d", n)
		}
		p := buf[:n-4]
		if _, err := io.ReadFull(r, p); err != nil {
			return fmt.Errorf("copy response: %w", err)
		}
		switch p[0] {
		case 1:
			_, err = stdout.Write(p[1:])
		case 2:
			_, err = stderr.Write(p[1:])
		default:
			err = fmt.Errorf("unexpected band: %d", p[0])
		}
		if err != nil {
			return fmt.Errorf("copy response: %w", err)
		}
	}
}

// pushFlags: the fields gitlab-shell and Workhorse fill for a push.
type pushFlags struct {
	repoFlags
	glID, glUsername string
}

func (pf *pushFlags) add(fs *flag.FlagSet) {
	pf.repoFlags.add(fs)
	fs.StringVar(&pf.glID, "gl-id", "user-1", "gl_id")
	fs.StringVar(&pf.glUsername, "gl-username", "user", "gl_username")
}

// sshReceivePack: SSHReceivePack as gitlab-shell runs it: the first
// message carries the parameters, stdin follows in chunks, stdout/stderr
// come back until the exit status; the process exits with that status.
func sshReceivePack(ctx context.Context, cc *grpc.ClientConn, args []string) (int, error) {
	fs := flag.NewFlagSet("ssh-receive-pack", flag.ExitOnError)
	var pf pushFlags
	pf.add(fs)
	fs.Parse(args)
	repo, err := repository(pf.repo, pf.glRepository)
	if err != nil {
		return 1, err
	}
	first := (&msgBuilder{}).bytes(1, repo).str(3, pf.glID).str(4, pf.glRepository).
		str(5, pf.glUsername).str(6, pf.gitProtocol()).strs(7, pf.config)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/gitaly.SSHService/SSHReceivePack")
	if err != nil {
		return 1, err
	}
	if err := st.SendMsg(&rawMsg{first.b}); err != nil {
		return 1, err
	}
	go sendChunks(st, 2)
	exit := 0
	for {
		var resp rawMsg
		if err := st.RecvMsg(&resp); err == io.EOF {
			return exit, nil
		} else if err != nil {
			return 1, err
		}
		fields, err := decodeFields(resp.b)
		if err != nil {
			return 1, err
		}
		for _, f := range fields {
			switch f.num {
			case 1:
				os.Stdout.Write(f.b)
			case 2:
				os.Stderr.Write(f.b)
			case 3:
				sub, err := decodeFields(f.b)
				if err != nil {
					return 1, err
				}
				for _, s := range sub {
					if s.num == 1 {
						exit = int(int32(s.v))
					}
				}
			}
		}
	}
}

// sendChunks copies stdin into messages carrying it in field num, then
// half-closes the stream.
func sendChunks(st grpc.ClientStream, num protowire.Number) {
	buf := make([]byte, 128*1024)
	for {
		n, err := os.Stdin.Read(buf)
		if n > 0 {
			m := (&msgBuilder{}).bytes(num, buf[:n])
			if st.SendMsg(&rawMsg{m.b}) != nil {
				return
			}
		}
		if err != nil {
			break
		}
	}
	st.CloseSend()
}

// postReceivePack: PostReceivePack as Workhorse runs it: request body from
// stdin in data chunks, response data to stdout.
func postReceivePack(ctx context.Context, cc *grpc.ClientConn, args []string) error {
	fs := flag.NewFlagSet("post-receive-pack", flag.ExitOnError)
	var pf pushFlags
	pf.add(fs)
	fs.Parse(args)
	repo, err := repository(pf.repo, pf.glRepository)
	if err != nil {
		return err
	}
	first := (&msgBuilder{}).bytes(1, repo).str(3, pf.glID).str(4, pf.glRepository).
		str(5, pf.glUsername).str(6, pf.gitProtocol()).strs(7, pf.config)
	st, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true},
		"/gitaly.SmartHTTPService/PostReceivePack")
	if err != nil {
		return err
	}
	if err := st.SendMsg(&rawMsg{first.b}); err != nil {
		return err
	}
	go sendChunks(st, 2)
	for {
		var resp rawMsg
		if err := st.RecvMsg(&resp); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		fields, err := decodeFields(resp.b)
		if err != nil {
			return err
		}
		for _, f := range fields {
			if f.num == 1 {
				os.Stdout.Write(f.b)
			}
		}
	}
}

// ---------------------------------------------------------------------------

var mode = "gitaly_client"

func logf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "gitaly_client: "+mode+": "+format+"\n", args...)
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: gitaly_client [-addr A] [-token T] [-ca F] [-server-name N] [-plain] [-timeout D] MODE [flags]
modes:
  unary-health       [-service S]         Health/Check, prints the status
  info-refs          -repo ST:PATH [-service upload-pack|receive-pack] [-protocol P]
  http-upload-pack   -repo ST:PATH [-protocol P] [-misbehave M [-after-bytes N]]
                     request body on stdin, response on stdout (Workhorse flow)
  ssh-upload-pack    -repo ST:PATH [-protocol P] [-misbehave M [-after-bytes N]]
                     git's stdin/stdout as gitlab-shell proxies them
  ssh-receive-pack   -repo ST:PATH [-gl-id ID -gl-repository R -gl-username U]
  post-receive-pack  -repo ST:PATH [-gl-id ID -gl-repository R -gl-username U]
misbehave: unknown-id no-ack no-id close-mid-pack exit-mid-pack no-flush raw
`)
	os.Exit(2)
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", os.Getenv("GITALY_ADDRESS"), "unix:PATH, tcp://HOST:PORT or tls://HOST:PORT")
	flag.StringVar(&o.token, "token", os.Getenv("GITALY_TOKEN"), "auth token secret (v2 tokens)")
	flag.StringVar(&o.ca, "ca", "", "PEM file of trusted CAs for tls://")
	flag.StringVar(&o.serverName, "server-name", "localhost", "TLS server name")
	flag.BoolVar(&o.plain, "plain", false, "plain gRPC connection, no multiplexing")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "deadline of the whole run")
	flag.StringVar(&o.correlationID, "correlation-id", "", "x-gitlab-correlation-id")
	flag.Usage = usage
	flag.Parse()
	if flag.NArg() < 1 || o.addr == "" {
		usage()
	}
	mode = flag.Arg(0)
	args := flag.Args()[1:]

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if o.correlationID != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-gitlab-correlation-id", o.correlationID)
	}
	reg := newRegistry()
	dctx, dcancel := context.WithTimeout(ctx, 15*time.Second)
	cc, err := dial(dctx, &o, reg)
	dcancel()
	if err != nil {
		logf("dial %s: %v", o.addr, err)
		os.Exit(1)
	}
	defer cc.Close()

	code := 0
	switch mode {
	case "unary-health":
		err = unaryHealth(ctx, cc, args)
	case "info-refs":
		err = infoRefs(ctx, cc, args)
	case "http-upload-pack":
		err = httpUploadPack(ctx, cc, reg, args)
	case "ssh-upload-pack":
		err = sshUploadPack(ctx, cc, reg, args)
	case "ssh-receive-pack":
		code, err = sshReceivePack(ctx, cc, args)
	case "post-receive-pack":
		err = postReceivePack(ctx, cc, args)
	default:
		usage()
	}
	if err != nil {
		logf("%v", err)
		if code == 0 {
			code = 1
		}
	}
	cc.Close()
	os.Exit(code)
}
