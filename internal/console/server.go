// Package console serves the Latchkey console: a web page on the loopback
// interface that acts with the user's own kubeconfig (like kubectl proxy), so
// Kubernetes RBAC decides what each person sees and may do. Nothing of it
// runs in the cluster. See docs/console.md.
//
// Security model, in short: the listener is on 127.0.0.1; the Host header
// must name it (DNS rebinding); a random one-time token in the printed URL is
// exchanged for a SameSite=Strict, HttpOnly session cookie; every change is a
// POST with the session's CSRF token and an Origin equal to the console's;
// the Content-Security-Policy allows scripts, styles and connections from the
// console itself only. Secrets are read from the user's Secrets only when
// asked (Reveal, or right after a credential is created) and never logged.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CookieName is the session cookie.
const CookieName = "latchkey_console"

// csrfField is the form field that carries the CSRF token.
const csrfField = "csrf"

// fieldManager names the console in managedFields.
const fieldManager = "latchkey-console"

// ContentSecurityPolicy is sent with every answer: scripts, styles and
// connections only from the console itself, no inline script, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(latchkeyv1alpha1.AddToScheme(s))
	return s
}()

// Options configure a Server.
type Options struct {
	// Config reaches the API server as the user (their kubeconfig).
	Config *rest.Config
	// Namespace is the namespace shown first (the kubeconfig's).
	Namespace string
	// Log receives one line per request (method, path without query,
	// status) and errors; never a secret, a token or a cookie. Nil: none.
	Log io.Writer
	// Timeout bounds each wait for the operator (a new credential's
	// token). Default 30s.
	Timeout time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// CatalogConfigMap names the ConfigMap holding the permission catalog
	// (key catalog.yaml), as the operator's --permission-catalog-configmap.
	// When set and readable with the user's rights, the New API client form
	// offers the catalog's scopes and permissions as checkboxes. Empty
	// name: free text.
	CatalogConfigMap types.NamespacedName
}

// Server is the console. It serves one user: whoever opens the one-time URL.
type Server struct {
	opts  Options
	c     client.WithWatch
	pages map[string]*template.Template

	mu       sync.Mutex
	addr     string // host:port the console answers to
	loginTok string // one-time; "" once used
	sessions map[string]*session
	logMu    sync.Mutex
}

// session is what one browser holds: its CSRF token and the secrets to show
// once (a new credential's token), by grant key.
type session struct {
	csrf  string
	flash map[string]shownSecret
}

// New builds a console acting with opts.Config.
func New(opts Options) (*Server, error) {
	if opts.Config == nil {
		return nil, errors.New("console: no Kubernetes configuration")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	cfg := rest.CopyConfig(opts.Config)
	cfg.UserAgent = "latchkey-console"
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 20, 40
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	return &Server{opts: opts, c: c, pages: pages, sessions: map[string]*session{}, loginTok: randomToken()}, nil
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Listen opens the console's listener on addr (127.0.0.1:0: a free port);
// from then on URL and BaseURL name it.
func (s *Server) Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.mu.Unlock()
	return ln, nil
}

// Serve answers on ln (from Listen) until ctx ends. The console answers only
// to requests whose Host names ln's address.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.mu.Unlock()
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		_ = hs.Close()
	}()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// URL is the one-time login URL to open: it holds the login token, so it is
// printed to the user only.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "http://" + s.addr + "/login?token=" + s.loginTok
}

// BaseURL is the console's address without the token.
func (s *Server) BaseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "http://" + s.addr
}

func (s *Server) logf(format string, args ...any) {
	if s.opts.Log == nil {
		return
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	_, _ = fmt.Fprintf(s.opts.Log, "%s console: "+format+"\n", append([]any{s.opts.Now().UTC().Format(time.RFC3339)}, args...)...)
}

// Handler is the console's HTTP handler with every check in front.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /login", s.login)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/clients", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /clients", s.withSession(s.clientsPage))
	mux.HandleFunc("GET /clients/new", s.withSession(s.newClientPage))
	mux.HandleFunc("POST /clients/new", s.withSession(s.createClient))
	mux.HandleFunc("GET /clients/{ns}/{name}", s.withSession(s.clientPage))
	mux.HandleFunc("POST /clients/{ns}/{name}/reveal", s.withSession(s.reveal))
	mux.HandleFunc("POST /clients/{ns}/{name}/permissions", s.withSession(s.savePermissions))
	mux.HandleFunc("POST /clients/{ns}/{name}/active", s.withSession(s.setActive))
	mux.HandleFunc("POST /clients/{ns}/{name}/rotate", s.withSession(s.rotateClient))
	mux.HandleFunc("GET /clients/{ns}/{name}/revoke", s.withSession(s.revokeConfirm))
	mux.HandleFunc("POST /clients/{ns}/{name}/revoke", s.withSession(s.revokeClient))
	mux.HandleFunc("GET /clients/{ns}/{name}/credentials", s.withSession(s.credentialsPage))
	mux.HandleFunc("POST /clients/{ns}/{name}/credentials", s.withSession(s.createCredential))
	mux.HandleFunc("GET /clients/{ns}/{name}/credentials/{grant}/remove", s.withSession(s.removeConfirm))
	mux.HandleFunc("POST /clients/{ns}/{name}/credentials/{grant}/remove", s.withSession(s.removeCredential))
	mux.HandleFunc("POST /clients/{ns}/{name}/credentials/{grant}/rotate", s.withSession(s.rotateCredential))
	mux.HandleFunc("GET /events", s.withSession(s.events))
	return s.guard(mux)
}

// statusRecorder keeps the status code for the request log.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// guard sets the security headers, refuses a Host that is not the console's
// (DNS rebinding) and logs the request without its query (the login token).
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin") // "no-referrer" would make form POSTs send Origin: null
		h.Set("Cache-Control", "no-store")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		defer func() { s.logf("%s %s %d", r.Method, r.URL.Path, rec.code) }()
		if !s.hostAllowed(r.Host) {
			http.Error(rec, "unknown host: open the console at the address the command printed", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(rec, r)
	})
}

// hostAllowed: the Host header names the console's own address
// (127.0.0.1:port, or localhost:port, [::1]:port on the same port).
func (s *Server) hostAllowed(host string) bool {
	s.mu.Lock()
	addr := s.addr
	s.mu.Unlock()
	if host == addr {
		return true
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		if host == net.JoinHostPort(h, port) {
			return true
		}
	}
	return false
}

// login exchanges the one-time token for a session cookie and redirects to
// a URL without it.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	tok := r.URL.Query().Get("token")
	s.mu.Lock()
	ok := s.loginTok != "" && tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.loginTok)) == 1
	var id string
	if ok {
		s.loginTok = "" // one time
		id = randomToken()
		s.sessions[id] = &session{csrf: randomToken(), flash: map[string]shownSecret{}}
	}
	s.mu.Unlock()
	if !ok {
		s.renderStatus(w, http.StatusUnauthorized, "This link is not valid",
			"The console's link works once. Restart the console (kubectl latchkey console) and open the new link it prints.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/clients", http.StatusSeeOther)
}

type sessionHandler func(http.ResponseWriter, *http.Request, *session)

// withSession requires the session cookie and, for a POST, an Origin equal
// to the console's and the session's CSRF token.
func (s *Server) withSession(next sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(CookieName)
		var sess *session
		if err == nil {
			s.mu.Lock()
			sess = s.sessions[ck.Value]
			s.mu.Unlock()
		}
		if sess == nil {
			s.renderStatus(w, http.StatusUnauthorized, "Not signed in",
				"Open the link the console printed when it started (kubectl latchkey console).")
			return
		}
		if r.Method == http.MethodPost {
			if origin := r.Header.Get("Origin"); origin == "" || !s.originAllowed(origin) {
				s.renderStatus(w, http.StatusForbidden, "Request refused",
					"This request did not come from the console's own page (its Origin is missing or another site's). Use the console's forms.")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if err := r.ParseForm(); err != nil {
				s.renderStatus(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
				return
			}
			got := r.PostForm.Get(csrfField)
			if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) != 1 {
				s.renderStatus(w, http.StatusForbidden, "Request refused",
					"The form's security token is missing or out of date. Reload the page and try again.")
				return
			}
		}
		next(w, r, sess)
	}
}

func (s *Server) originAllowed(origin string) bool {
	host, ok := strings.CutPrefix(origin, "http://")
	return ok && s.hostAllowed(host)
}

// shownSecret is a secret to show once, by label ("Token", "Key ID"...).
type shownSecret struct {
	Title  string
	Fields []secretField
}

type secretField struct {
	Label, Value, ID string
}

func (s *Server) putFlash(sess *session, key string, v shownSecret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess.flash[key] = v
}

// takeFlash returns and forgets the secret to show for key.
func (s *Server) takeFlash(sess *session, key string) (shownSecret, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := sess.flash[key]
	delete(sess.flash, key)
	return v, ok
}
