package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// This file holds what protects the server from its network: the API key,
// the Host check against DNS rebinding, cross-site POSTs from browsers,
// the connection limit and the targets remote images may be fetched from.

// EnvAPIKey names the environment variable `magma serve` reads the API key
// from when --api-key is not given.
const EnvAPIKey = "MAGMA_API_KEY"

// guard checks a request before it reaches its endpoint; a non-nil error
// is rendered as JSON by wrap.
func (s *Server) guard(endpoint string, r *http.Request) error {
	if !s.hostAllowed(r.Host) {
		return newAPIError(http.StatusForbidden, "invalid_request_error", "host_not_allowed",
			"Host %q is not this server's address or a name given with --allowed-host", r.Host)
	}
	if r.Method == http.MethodPost {
		if err := s.cop.Check(r); err != nil {
			return newAPIError(http.StatusForbidden, "invalid_request_error", "cross_origin",
				"cross-site requests are refused (%v)", err)
		}
		if ct := r.Header.Get("Content-Type"); ct != "" {
			mt, _, _ := mime.ParseMediaType(ct)
			switch mt {
			case "text/plain", "multipart/form-data":
				// The content types a browser form may send cross-site
				// without a preflight: a JSON API has no use for them.
				return newAPIError(http.StatusUnsupportedMediaType, "invalid_request_error", "unsupported_media_type",
					"Content-Type %q is not accepted: send application/json", mt)
			}
		}
	}
	if s.keyHash != nil && endpoint != "/health" {
		// Auth schemes are case-insensitive (RFC 9110 11.1): "bearer" too.
		got := r.Header.Get("X-API-Key")
		scheme, cred, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			got = cred
		}
		h := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if subtle.ConstantTimeCompare(h[:], s.keyHash) != 1 {
			e := newAPIError(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
				"a valid API key is required (header Authorization: Bearer <key>)")
			return e
		}
	}
	return nil
}

// hostAllowed accepts an empty Host (HTTP/1.0), IP literals (an attacker's
// DNS name rebound to this machine arrives under its own name, never as an
// IP), localhost, the listen address and the configured names.
func (s *Server) hostAllowed(hostport string) bool {
	if hostport == "" {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	for _, a := range s.cfg.AllowedHosts {
		if strings.EqualFold(strings.TrimSuffix(a, "."), host) {
			return true
		}
	}
	return false
}

// cleanPath reports whether the path is what ServeMux would route without
// answering with its plain-text redirect.
func cleanPath(p string) bool {
	return p != "" && p[0] == '/' && (p == "/" || path.Clean(p) == p)
}

// warnExposure logs when the server listens beyond loopback without a key.
func (s *Server) warnExposure(addr net.Addr) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP.IsLoopback() || s.keyHash != nil {
		return
	}
	s.log.Warn("listening on a non-loopback address without an API key: anyone who can reach it can use the model; set --api-key or "+EnvAPIKey,
		"addr", addr.String())
}

// limitListener accepts at most n connections at a time; one over the limit
// gets a JSON 503 and is closed at once, so stalled clients cannot exhaust
// file descriptors and /health keeps answering once they time out.
type limitListener struct {
	net.Listener
	sem     chan struct{}
	refused func()
	open    *atomic.Int64
}

func newLimitListener(ln net.Listener, n int, refused func(), open *atomic.Int64) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), refused: refused, open: open}
}

const overloadResponse = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: %d\r\n\r\n%s"

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			l.open.Add(1)
			return &limitConn{Conn: c, release: func() { l.open.Add(-1); <-l.sem }}, nil
		default:
		}
		if l.refused != nil {
			l.refused()
		}
		go func() {
			body := `{"error":{"message":"too many open connections; retry later","type":"server_error","param":null,"code":"too_many_connections"}}`
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = fmt.Fprintf(c, overloadResponse, len(body), body)
			_ = c.Close()
		}()
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// errPrivateTarget refuses remote image URLs that resolve to this machine
// or its private networks (SSRF), unless AllowPrivateImages.
var errPrivateTarget = errors.New("the image URL resolves to a loopback, link-local or private address, which this server does not fetch from (start it with --allow-private-images to allow)")

// publicOnly is a net.Dialer Control function refusing non-public
// addresses: it sees the address actually dialled (after DNS, on every
// redirect), so a name rebound to 127.0.0.1 is refused too.
func publicOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return errPrivateTarget
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return errPrivateTarget
	}
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() ||
		netip.MustParsePrefix("100.64.0.0/10").Contains(ip) || netip.MustParsePrefix("fc00::/7").Contains(ip) {
		return errPrivateTarget
	}
	return nil
}

// imageClient is the HTTP client of remote image fetches.
func (s *Server) imageClient() *http.Client {
	d := &net.Dialer{Timeout: s.cfg.RemoteImageTimeout}
	if !s.cfg.AllowPrivateImages {
		d.Control = publicOnly
	}
	return &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}, Proxy: nil, TLSHandshakeTimeout: s.cfg.RemoteImageTimeout, ResponseHeaderTimeout: s.cfg.RemoteImageTimeout},
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return fmt.Errorf("too many redirects")
			}
			if r.URL.Scheme != "http" && r.URL.Scheme != "https" {
				return fmt.Errorf("redirect to scheme %q refused", r.URL.Scheme)
			}
			return nil
		},
	}
}
