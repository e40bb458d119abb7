package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
)

// pageNames are the templates in templates/, each rendered inside layout.html.
var pageNames = []string{"clients", "new", "client", "credentials", "confirm", "status"}

func parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{"join": strings.Join, "dict": dict}
	pages := map[string]*template.Template{}
	for _, p := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/secret.html", "templates/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", p, err)
		}
		pages[p] = t
	}
	return pages, nil
}

// dict builds a map for a sub-template from key, value pairs.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, errors.New("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, errors.New("dict: keys are strings")
		}
		m[k] = kv[i+1]
	}
	return m, nil
}

// page is what every template gets.
type page struct {
	Title     string
	CSRF      string
	Namespace string
	// Live is the URL the live region is re-read from, Events the URL of
	// the server-sent events that say when; empty: the page is not live.
	Live, Events string
	// Problem is an error to show at the top (forbidden, not found...).
	Problem *problem
	Notice  string
	Data    any
}

// problem is an error explained for a person: never a stack trace.
type problem struct {
	Title, Detail string
}

func (s *Server) render(w http.ResponseWriter, code int, name string, p page) {
	var buf bytes.Buffer
	if err := s.pages[name].Execute(&buf, p); err != nil {
		s.logf("rendering %s: %v", name, err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) renderStatus(w http.ResponseWriter, code int, title, detail string) {
	s.render(w, code, "status", page{Title: title, Problem: &problem{Title: title, Detail: detail}})
}

// explain turns an API error into a problem a person can act on, and the
// HTTP status to answer with. Forbidden answers say so plainly, with the API
// server's words (which user, which verb, which resource).
func explain(err error) (int, *problem) {
	var status apierrors.APIStatus
	switch {
	case apierrors.IsForbidden(err):
		return http.StatusForbidden, &problem{Title: "Forbidden", Detail: "Your Kubernetes user may not do this: " + apiMessage(err) +
			". Ask a cluster administrator for the Role you need, or use a kubeconfig context that has it."}
	case apierrors.IsNotFound(err):
		return http.StatusNotFound, &problem{Title: "Not found", Detail: apiMessage(err) + ". It may have been deleted."}
	case apierrors.IsUnauthorized(err):
		return http.StatusUnauthorized, &problem{Title: "Not authenticated", Detail: "The cluster did not accept your kubeconfig's credentials: " + apiMessage(err)}
	case meta.IsNoMatchError(err):
		return http.StatusServiceUnavailable, &problem{Title: "Latchkey is not installed", Detail: "The cluster has no latchkey.dev resources: install Latchkey first."}
	case errors.As(err, &status):
		return http.StatusBadGateway, &problem{Title: "The API server refused", Detail: apiMessage(err)}
	default:
		return http.StatusBadGateway, &problem{Title: "The cluster could not be reached", Detail: err.Error()}
	}
}

func apiMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Message != "" {
		return status.Status().Message
	}
	return err.Error()
}

func (s *Server) fail(w http.ResponseWriter, sess *session, err error) {
	code, p := explain(err)
	s.logf("API error (%d): %s", code, oneLine(p.Detail))
	s.render(w, code, "status", page{Title: p.Title, CSRF: sess.csrf, Problem: p})
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// fieldErrors maps an admission rejection's causes (webhook or CEL) to form
// fields, in the words they gave; what matches no field goes under "".
func fieldErrors(err error, fields map[string]string) map[string][]string {
	out := map[string][]string{}
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil || len(status.Status().Details.Causes) == 0 {
		out[""] = append(out[""], apiMessage(err))
		return out
	}
	for _, c := range status.Status().Details.Causes {
		f := strings.TrimPrefix(c.Field, "spec.")
		if i := strings.IndexAny(f, "[."); i >= 0 {
			f = f[:i]
		}
		name, ok := fields[f]
		if !ok {
			name = ""
		}
		msg := c.Message
		if c.Field != "" && !ok {
			msg = c.Field + ": " + msg
		}
		out[name] = append(out[name], msg)
	}
	return out
}

// ago says how long ago t was, in the words Kallithea uses.
func ago(now time.Time, t time.Time) string {
	return humanDuration(now.Sub(t)) + " ago"
}

func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d < time.Minute:
		return plural(int(d/time.Second), "second")
	case d.Round(time.Minute) < time.Hour:
		return plural(int(d.Round(time.Minute)/time.Minute), "minute")
	case d.Round(time.Hour) < 24*time.Hour:
		return plural(int(d.Round(time.Hour)/time.Hour), "hour")
	default:
		return plural(int((d+12*time.Hour)/(24*time.Hour)), "day")
	}
}

// expiry is Kallithea's "Expires: in 3 days" / "Expired 2 hours ago" / "Never".
func expiry(now time.Time, t *metav1.Time) (text string, expired bool) {
	if t == nil {
		return "Never", false
	}
	if !t.After(now) {
		return "Expired " + ago(now, t.Time), true
	}
	return "Expires: in " + humanDuration(t.Sub(now)), false
}

func lastUsed(now time.Time, u latchkeyv1alpha1.UsageStatus) string {
	if u.LastUsedAt == nil {
		return "Never used"
	}
	s := ago(now, u.LastUsedAt.Time)
	if u.LastUsedFrom != "" {
		s += " from " + u.LastUsedFrom
	}
	return s
}

// readiness is "Ready", or "Not ready: <message>".
func readiness(conds []metav1.Condition) (string, bool) {
	c := meta.FindStatusCondition(conds, latchkeyv1alpha1.ConditionReady)
	switch {
	case c == nil:
		return "Waiting for the operator", false
	case c.Status == metav1.ConditionTrue:
		return "Ready", true
	default:
		return "Not ready: " + c.Message, false
	}
}
