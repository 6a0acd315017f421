// yamux_peer: the real hashicorp/yamux on one side of a socket, so our C
// session can be checked against it. The connected socket is fd 3.
//
//	yamux_peer server-echo WINDOW         echo every stream the C client opens
//	yamux_peer client SIZE                open stream 1, send SIZE pattern bytes,
//	                                      expect them echoed, close; meanwhile accept a
//	                                      server-opened sidechannel, answer "ok",
//	                                      send SIZE bytes framed + "0000", expect
//	                                      them back as side-band band 1
//
// Exit status 0 means every check passed; failures are printed to stderr.
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/hashicorp/yamux"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i%251) ^ byte(i>>16)
	}
	return b
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "yamux_peer: "+format+"\n", args...)
	os.Exit(1)
}

func config(window uint32) *yamux.Config {
	c := yamux.DefaultConfig()
	c.EnableKeepAlive = false
	c.AcceptBacklog = 16
	c.LogOutput = os.Stderr
	if window > 0 {
		c.MaxStreamWindowSize = window
	}
	return c
}

func serverEcho(conn io.ReadWriteCloser, window uint32) {
	sess, err := yamux.Server(conn, config(window))
	if err != nil {
		fail("server: %v", err)
	}
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			return // session over: the C side closed it
		}
		go func(st *yamux.Stream) {
			if _, err := io.Copy(st, st); err != nil {
				fmt.Fprintf(os.Stderr, "yamux_peer: echo: %v\n", err)
			}
			st.Close()
		}(st)
	}
}

func echoCheck(sess *yamux.Session, size int) error {
	st, err := sess.OpenStream()
	if err != nil {
		return fmt.Errorf("open: %v", err)
	}
	defer st.Close()
	want := pattern(size)
	werr := make(chan error, 1)
	go func() {
		_, err := st.Write(want)
		werr <- err
	}()
	// Read the whole echo before closing: this yamux version reports EOF to
	// reads once the local side is closed, so no half-close here.
	got := make([]byte, size)
	if _, err := io.ReadFull(st, got); err != nil {
		return fmt.Errorf("echo read: %v", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("echo write: %v", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("echo mismatch")
	}
	return nil
}

func sidechannelCheck(sess *yamux.Session, size int) error {
	st, err := sess.AcceptStream()
	if err != nil {
		return fmt.Errorf("accept: %v", err)
	}
	defer st.Close()
	hello := make([]byte, 19)
	if _, err := io.ReadFull(st, hello); err != nil {
		return fmt.Errorf("read hello: %v", err)
	}
	if string(hello[:11]) != "sidechannel" {
		return fmt.Errorf("bad magic %q", hello[:11])
	}
	if id := binary.BigEndian.Uint64(hello[11:]); id != 42 {
		return fmt.Errorf("id %d, want 42", id)
	}
	if _, err := st.Write([]byte("ok")); err != nil {
		return err
	}
	want := pattern(size)
	go func() {
		for p := want; len(p) > 0; {
			n := len(p)
			if n > 65516 {
				n = 65516
			}
			fmt.Fprintf(st, "%04x", n+4)
			st.Write(p[:n])
			p = p[n:]
		}
		st.Write([]byte("0000"))
	}()
	var got []byte
	hdr := make([]byte, 4)
	for {
		if _, err := io.ReadFull(st, hdr); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("sideband header: %v", err)
		}
		n, err := strconv.ParseUint(string(hdr), 16, 16)
		if err != nil || n < 6 {
			return fmt.Errorf("bad sideband length %q", hdr)
		}
		pkt := make([]byte, n-4)
		if _, err := io.ReadFull(st, pkt); err != nil {
			return fmt.Errorf("sideband packet: %v", err)
		}
		if pkt[0] != 1 {
			return fmt.Errorf("band %d", pkt[0])
		}
		got = append(got, pkt[1:]...)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("sidechannel mismatch: got %d bytes, want %d", len(got), len(want))
	}
	return nil
}

func client(conn io.ReadWriteCloser, size int) {
	sess, err := yamux.Client(conn, config(0))
	if err != nil {
		fail("client: %v", err)
	}
	if _, err := sess.Ping(); err != nil {
		fail("ping: %v", err)
	}
	side := make(chan error, 1)
	go func() { side <- sidechannelCheck(sess, size) }()
	if err := echoCheck(sess, size); err != nil {
		fail("%v", err)
	}
	select {
	case err := <-side:
		if err != nil {
			fail("%v", err)
		}
	case <-time.After(60 * time.Second):
		fail("sidechannel timed out")
	}
	sess.Close()
}

func main() {
	if len(os.Args) != 3 {
		fail("usage: yamux_peer server-echo WINDOW | client SIZE")
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fail("bad number %q", os.Args[2])
	}
	// A net.Conn (netpoller-backed), so that closing the session also
	// interrupts its blocked reader.
	conn, err := net.FileConn(os.NewFile(3, "conn"))
	if err != nil {
		fail("fd 3: %v", err)
	}
	switch os.Args[1] {
	case "server-echo":
		serverEcho(conn, uint32(n))
	case "client":
		client(conn, n)
	default:
		fail("unknown mode %q", os.Args[1])
	}
}
