package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/catalog"
)

// allNamespaces is the picker's value for every namespace.
const allNamespaces = "*"

// Keys of the consumer Secrets the operator writes (docs/credentials.md).
const (
	keyClientID       = latchkeyv1alpha1.ClientIDKey
	keyClientSecret   = latchkeyv1alpha1.ClientSecretKey
	keyToken          = latchkeyv1alpha1.TokenKey
	keyKeyID          = latchkeyv1alpha1.KeyIDKey
	keyKeySecret      = latchkeyv1alpha1.KeySecretKey
	keyUsername       = latchkeyv1alpha1.UsernameKey
	keyPassword       = latchkeyv1alpha1.PasswordKey
	annotationTokenID = latchkeyv1alpha1.AnnotationTokenID
)

func (s *Server) namespaceParam(r *http.Request) string {
	if ns := r.URL.Query().Get("namespace"); ns != "" {
		return ns
	}
	return s.opts.Namespace
}

func clientURL(ns, name string) string {
	return "/clients/" + url.PathEscape(ns) + "/" + url.PathEscape(name)
}

// eventsURL is the server-sent events stream for a namespace.
func eventsURL(ns string) string { return "/events?namespace=" + url.QueryEscape(ns) }

// clientRow is one line of the API clients page.
type clientRow struct {
	Namespace, Name, URL, DisplayName, ClientID, Tenant string
	Scopes                                              []string
	Permissions                                         int
	Active                                              bool
	Ready                                               string
	IsReady                                             bool
	LastUsed                                            string
	Credentials                                         int
}

type clientsData struct {
	Namespaces []string
	CanAll     bool
	All        bool
	Rows       []clientRow
}

// namespaces lists the namespaces the user may list, and whether they may
// list API clients in every namespace; a user who may not list namespaces
// gets only the current one.
func (s *Server) namespaces(ctx context.Context, current string) ([]string, bool) {
	names := []string{}
	list := &corev1.NamespaceList{}
	if err := s.c.List(ctx, list); err == nil {
		for _, n := range list.Items {
			names = append(names, n.Name)
		}
	}
	if current != allNamespaces && !slices.Contains(names, current) {
		names = append(names, current)
	}
	if !slices.Contains(names, s.opts.Namespace) {
		names = append(names, s.opts.Namespace)
	}
	sort.Strings(names)
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "list", Group: latchkeyv1alpha1.GroupVersion.Group, Resource: "apiclients"},
	}}
	all := s.c.Create(ctx, review) == nil && review.Status.Allowed
	return names, all
}

func (s *Server) clientsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	ns := s.namespaceParam(r)
	names, canAll := s.namespaces(ctx, ns)
	p := page{Title: "API clients", CSRF: sess.csrf, Namespace: ns, Live: "/clients?namespace=" + url.QueryEscape(ns), Events: eventsURL(ns)}
	data := clientsData{Namespaces: names, CanAll: canAll, All: ns == allNamespaces}
	p.Data = &data
	var opts []client.ListOption
	if ns != allNamespaces {
		opts = append(opts, client.InNamespace(ns))
	}
	clients := &latchkeyv1alpha1.ApiClientList{}
	if err := s.c.List(ctx, clients, opts...); err != nil {
		code, prob := explain(err)
		p.Problem = prob
		s.render(w, code, "clients", p)
		return
	}
	grants := &latchkeyv1alpha1.CredentialGrantList{}
	counts := map[types.NamespacedName]int{}
	if err := s.c.List(ctx, grants, opts...); err == nil {
		for _, g := range grants.Items {
			counts[types.NamespacedName{Namespace: g.Namespace, Name: g.Spec.ClientName}]++
		}
	}
	now := s.opts.Now()
	for _, c := range clients.Items {
		ready, ok := readiness(c.Status.Conditions)
		data.Rows = append(data.Rows, clientRow{
			Namespace: c.Namespace, Name: c.Name, URL: clientURL(c.Namespace, c.Name), DisplayName: c.Spec.DisplayName,
			ClientID: clientID(&c), Tenant: c.Spec.Tenant, Scopes: c.Spec.Scopes, Permissions: len(c.Spec.Permissions),
			Active: c.IsActive(), Ready: ready, IsReady: ok, LastUsed: lastUsed(now, c.Status.UsageStatus),
			Credentials: counts[types.NamespacedName{Namespace: c.Namespace, Name: c.Name}],
		})
	}
	sort.Slice(data.Rows, func(i, j int) bool {
		if data.Rows[i].Namespace != data.Rows[j].Namespace {
			return data.Rows[i].Namespace < data.Rows[j].Namespace
		}
		return data.Rows[i].Name < data.Rows[j].Name
	})
	s.render(w, http.StatusOK, "clients", p)
}

func clientID(c *latchkeyv1alpha1.ApiClient) string {
	if c.Status.ClientID != "" {
		return c.Status.ClientID
	}
	return c.Spec.ClientID
}

// newClientForm is the New API client form, with the admission errors by
// field.
type newClientForm struct {
	Name, Tenant, Scopes, Permissions, ID string
	AllowImpersonate, AllowLogin          bool
	Errors                                map[string][]string
	// Catalog, when one is configured and readable: the scopes and their
	// permissions as checkboxes.
	Catalog []catalogScope
}

type catalogScope struct {
	Name, Description string
	Global, Checked   bool
	Permissions       []catalogPermission
}

type catalogPermission struct {
	Name    string
	Checked bool
}

// loadCatalog reads the permission catalog with the user's rights; nil when
// none is configured or it cannot be read (the form takes free text then).
func (s *Server) loadCatalog(ctx context.Context) *catalog.Catalog {
	key := s.opts.CatalogConfigMap
	if key.Name == "" {
		return nil
	}
	cm := &corev1.ConfigMap{}
	if err := s.c.Get(ctx, key, cm); err != nil {
		s.logf("permission catalog %s not read (%s): the form takes free text", key, oneLine(apiMessage(err)))
		return nil
	}
	c, err := catalog.Load([]byte(cm.Data[catalog.ConfigMapKey]))
	if err != nil {
		s.logf("permission catalog %s: %s", key, oneLine(err.Error()))
		return nil
	}
	return c
}

// withCatalog fills the form's checkboxes from the catalog, checked as the
// form's scopes and permissions say.
func (f *newClientForm) withCatalog(c *catalog.Catalog) {
	if c == nil {
		return
	}
	scopes, perms := splitList(f.Scopes), splitList(f.Permissions)
	for _, sc := range c.Scopes() {
		cs := catalogScope{Name: sc.Name, Description: sc.Description, Global: sc.Global, Checked: slices.Contains(scopes, sc.Name)}
		for _, p := range sc.Permissions {
			cs.Permissions = append(cs.Permissions, catalogPermission{Name: p, Checked: slices.Contains(perms, p)})
		}
		f.Catalog = append(f.Catalog, cs)
	}
}

// newClientFields maps spec fields to the form's fields.
var newClientFields = map[string]string{
	"scopes": "scopes", "permissions": "permissions", "tenant": "tenant", "clientID": "id",
	"displayName": "name", "clientSecretRef": "secret", "allowImpersonate": "allowImpersonate", "allowLogin": "allowLogin",
}

func (s *Server) newClientPage(w http.ResponseWriter, r *http.Request, sess *session) {
	ns := s.namespaceParam(r)
	if ns == allNamespaces {
		ns = s.opts.Namespace
	}
	f := &newClientForm{}
	f.withCatalog(s.loadCatalog(r.Context()))
	s.render(w, http.StatusOK, "new", page{Title: "New API client", CSRF: sess.csrf, Namespace: ns, Data: f})
}

// splitList splits a form value on commas and white space.
func splitList(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func (s *Server) createClient(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	ns := r.PostForm.Get("namespace")
	if ns == "" || ns == allNamespaces {
		ns = s.opts.Namespace
	}
	f := &newClientForm{
		Name: strings.TrimSpace(r.PostForm.Get("name")), Tenant: strings.TrimSpace(r.PostForm.Get("tenant")),
		// Checkboxes (catalog) send one value each; text fields one list.
		Scopes: strings.Join(r.PostForm["scopes"], ","), Permissions: strings.Join(r.PostForm["permissions"], ","), ID: strings.TrimSpace(r.PostForm.Get("id")),
		AllowImpersonate: r.PostForm.Get("allowImpersonate") == "on", AllowLogin: r.PostForm.Get("allowLogin") == "on",
		Errors: map[string][]string{},
	}
	secret := r.PostForm.Get("secret")
	f.withCatalog(s.loadCatalog(ctx))
	p := page{Title: "New API client", CSRF: sess.csrf, Namespace: ns, Data: f}
	if len(splitList(f.Scopes)) == 0 {
		f.Errors["scopes"] = append(f.Errors["scopes"], "Give at least one scope, for example blogs or system.")
	}
	if len(f.Errors) > 0 {
		s.render(w, http.StatusUnprocessableEntity, "new", p)
		return
	}
	c := &latchkeyv1alpha1.ApiClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns},
		Spec: latchkeyv1alpha1.ApiClientSpec{
			Scopes: splitList(f.Scopes), Permissions: splitList(f.Permissions), Tenant: f.Tenant, ClientID: f.ID,
			DisplayName: f.Name, AllowImpersonate: f.AllowImpersonate, AllowLogin: f.AllowLogin,
		},
	}
	if f.ID != "" && len(validation.IsDNS1123Subdomain(f.ID)) == 0 {
		c.Name = f.ID
	} else {
		c.GenerateName = "api-client-"
	}
	// A chosen secret goes into its own Secret, created first (as the CLI
	// does) and owned by the client once it exists.
	var chosen *corev1.Secret
	if secret != "" {
		chosen = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "api-client-chosen-secret-",
				Labels: map[string]string{latchkeyv1alpha1.LabelCreatedBy: fieldManager}},
			Type:       corev1.SecretTypeOpaque,
			StringData: map[string]string{keyClientSecret: secret},
		}
		if err := s.c.Create(ctx, chosen, client.FieldOwner(fieldManager)); err != nil {
			code, prob := explain(err)
			p.Problem = prob
			s.render(w, code, "new", p)
			return
		}
		c.Spec.ClientSecretRef = &latchkeyv1alpha1.SecretKeyReference{Name: chosen.Name, Key: keyClientSecret}
	}
	if err := s.c.Create(ctx, c, client.FieldOwner(fieldManager)); err != nil {
		if chosen != nil {
			_ = s.c.Delete(context.WithoutCancel(ctx), chosen)
		}
		if admissionRefused := apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsAlreadyExists(err); !admissionRefused {
			code, prob := explain(err)
			p.Problem = prob
			s.render(w, code, "new", p)
			return
		}
		f.Errors = fieldErrors(err, newClientFields)
		s.render(w, http.StatusUnprocessableEntity, "new", p)
		return
	}
	if chosen != nil {
		patch := client.MergeFrom(chosen.DeepCopy())
		chosen.StringData = nil
		chosen.OwnerReferences = append(chosen.OwnerReferences, metav1.OwnerReference{
			APIVersion: latchkeyv1alpha1.GroupVersion.String(), Kind: latchkeyv1alpha1.ApiClientKind, Name: c.Name, UID: c.UID, BlockOwnerDeletion: ptr.To(false),
		})
		if err := s.c.Patch(ctx, chosen, patch); err != nil {
			s.logf("could not make Secret %s/%s owned by ApiClient %s: %s", ns, chosen.Name, c.Name, oneLine(apiMessage(err)))
		}
	}
	s.logf("created ApiClient %s/%s", ns, c.Name)
	http.Redirect(w, r, clientURL(ns, c.Name), http.StatusSeeOther)
}

// clientView is the client page.
type clientView struct {
	Namespace, Name, URL, DisplayName, ClientID, Tenant string
	Scopes, Permissions                                 []string
	PermissionsText                                     string
	Active                                              bool
	Ready                                               string
	IsReady                                             bool
	LastUsed                                            string
	Issued                                              bool
	ChosenSecret                                        bool
	RequireInactive                                     bool
	GracePeriod                                         string
	AllowImpersonate, AllowLogin                        bool
	Credentials                                         int
	// Secret is set only in the answer to Reveal.
	Secret *shownSecret
	// PermissionErrors are the admission errors of a permissions change.
	PermissionErrors []string
	// CatalogPermissions, with a catalog: the permissions of the client's
	// scopes in the catalog and the client's own, as checkboxes.
	CatalogPermissions []catalogPermission
}

func (s *Server) getClient(ctx context.Context, r *http.Request) (*latchkeyv1alpha1.ApiClient, error) {
	c := &latchkeyv1alpha1.ApiClient{}
	err := s.c.Get(ctx, types.NamespacedName{Namespace: r.PathValue("ns"), Name: r.PathValue("name")}, c)
	return c, err
}

func (s *Server) viewClient(ctx context.Context, c *latchkeyv1alpha1.ApiClient) *clientView {
	ready, ok := readiness(c.Status.Conditions)
	v := &clientView{
		Namespace: c.Namespace, Name: c.Name, URL: clientURL(c.Namespace, c.Name), DisplayName: c.Spec.DisplayName,
		ClientID: clientID(c), Tenant: c.Spec.Tenant, Scopes: c.Spec.Scopes, Permissions: c.Spec.Permissions,
		PermissionsText: strings.Join(c.Spec.Permissions, "\n"), Active: c.IsActive(), Ready: ready, IsReady: ok,
		LastUsed: lastUsed(s.opts.Now(), c.Status.UsageStatus), Issued: c.Status.TokenID != "" && c.Status.SecretName != "",
		ChosenSecret: c.Spec.ClientSecretRef != nil, RequireInactive: c.Spec.DeletionPolicy == latchkeyv1alpha1.DeletionPolicyRequireInactive,
		AllowImpersonate: c.Spec.AllowImpersonate, AllowLogin: c.Spec.AllowLogin,
	}
	if c.Spec.Rotation != nil && c.Spec.Rotation.GracePeriod != nil {
		v.GracePeriod = c.Spec.Rotation.GracePeriod.Duration.String()
	}
	if cat := s.loadCatalog(ctx); cat != nil {
		var names []string
		for _, sc := range c.Spec.Scopes {
			if def, ok := cat.Scope(sc); ok {
				names = append(names, def.Permissions...)
			}
		}
		for _, p := range c.Spec.Permissions {
			if !slices.Contains(names, p) {
				names = append(names, p)
			}
		}
		for _, p := range names {
			v.CatalogPermissions = append(v.CatalogPermissions, catalogPermission{Name: p, Checked: slices.Contains(c.Spec.Permissions, p)})
		}
	}
	grants := &latchkeyv1alpha1.CredentialGrantList{}
	if err := s.c.List(ctx, grants, client.InNamespace(c.Namespace)); err == nil {
		for _, g := range grants.Items {
			if g.Spec.ClientName == c.Name {
				v.Credentials++
			}
		}
	}
	return v
}

func (s *Server) clientPageWith(w http.ResponseWriter, r *http.Request, sess *session, code int, mod func(*clientView), notice string) {
	ctx := r.Context()
	c, err := s.getClient(ctx, r)
	if err != nil {
		s.fail(w, sess, err)
		return
	}
	v := s.viewClient(ctx, c)
	if mod != nil {
		mod(v)
	}
	s.render(w, code, "client", page{Title: "API client " + c.Name, CSRF: sess.csrf, Namespace: c.Namespace, Notice: notice,
		Live: v.URL, Events: eventsURL(c.Namespace), Data: v})
}

func (s *Server) clientPage(w http.ResponseWriter, r *http.Request, sess *session) {
	s.clientPageWith(w, r, sess, http.StatusOK, nil, r.URL.Query().Get("notice"))
}

// reveal answers with the client page and its secret, read from the
// consumer Secret with the user's rights. Only a POST reveals: the secret
// is never in a page that was not asked for it.
func (s *Server) reveal(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	c, err := s.getClient(ctx, r)
	if err != nil {
		s.fail(w, sess, err)
		return
	}
	if c.Status.SecretName == "" || c.Status.TokenID == "" {
		s.clientPageWith(w, r, sess, http.StatusConflict, nil, "The operator has not issued this client's secret yet; try again in a moment.")
		return
	}
	sec := &corev1.Secret{}
	if err := s.c.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: c.Status.SecretName}, sec); err != nil {
		s.fail(w, sess, err)
		return
	}
	if sec.Annotations[annotationTokenID] != c.Status.TokenID {
		s.clientPageWith(w, r, sess, http.StatusConflict, nil, "The secret is being rotated; Reveal again in a moment.")
		return
	}
	s.logf("revealed the secret of ApiClient %s/%s", c.Namespace, c.Name)
	secret := &shownSecret{Title: "Client credentials", Fields: []secretField{
		{Label: "client_id", Value: string(sec.Data[keyClientID]), ID: "revealed-client-id"},
		{Label: "client_secret", Value: string(sec.Data[keyClientSecret]), ID: "revealed-secret"},
	}}
	s.clientPageWith(w, r, sess, http.StatusOK, func(v *clientView) { v.Secret = secret }, "")
}

func (s *Server) savePermissions(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	c, err := s.getClient(ctx, r)
	if err != nil {
		s.fail(w, sess, err)
		return
	}
	perms := splitList(strings.Join(r.PostForm["permissions"], ","))
	patch := client.MergeFromWithOptions(c.DeepCopy(), client.MergeFromWithOptimisticLock{})
	c.Spec.Permissions = perms
	if err := s.c.Patch(ctx, c, patch, client.FieldOwner(fieldManager)); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			var msgs []string
			for _, m := range fieldErrors(err, map[string]string{"permissions": "permissions"}) {
				msgs = append(msgs, m...)
			}
			s.clientPageWith(w, r, sess, http.StatusUnprocessableEntity, func(v *clientView) {
				v.PermissionErrors = msgs
				v.PermissionsText = strings.Join(perms, "\n")
			}, "")
			return
		}
		s.fail(w, sess, err)
		return
	}
	s.logf("set the permissions of ApiClient %s/%s", c.Namespace, c.Name)
	http.Redirect(w, r, clientURL(c.Namespace, c.Name)+"?notice="+url.QueryEscape("Permissions saved."), http.StatusSeeOther)
}

func (s *Server) setActive(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	c, err := s.getClient(ctx, r)
	if err != nil {
		s.fail(w, sess, err)
		return
	}
	on := r.PostForm.Get("active") == "true"
	patch := client.MergeFrom(c.DeepCopy())
	c.Spec.Active = ptr.To(on)
	if err := s.c.Patch(ctx, c, patch, client.FieldOwner(fieldManager)); err != nil {
		s.fail(w, sess, err)
		return
	}
	notice := "Deactivated: every credential of this client is rejected until it is activated again."
	if on {
		notice = "Activated: the client's credentials work again."
	}
	http.Redirect(w, r, clientURL(c.Namespace, c.Name)+"?notice="+url.QueryEscape(notice), http.StatusSeeOther)
}

// gracePeriods are the rotate form's choices.
var gracePeriods = map[string]time.Duration{"0": 0, "5m": 5 * time.Minute, "1h": time.Hour, "24h": 24 * time.Hour}

// rotatePatch sets the rotate annotation and, when asked, the grace period
// during which the previous secret stays valid.
func rotatePatch(obj client.Object, rot **latchkeyv1alpha1.Rotation, grace string) (client.Patch, error) {
	d, ok := gracePeriods[grace]
	if !ok {
		return nil, fmt.Errorf("unknown grace period %q", grace)
	}
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	a := obj.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[latchkeyv1alpha1.AnnotationRotate] = time.Now().UTC().Format(time.RFC3339Nano)
	obj.SetAnnotations(a)
	if d > 0 {
		*rot = &latchkeyv1alpha1.Rotation{GracePeriod: &metav1.Duration{Duration: d}}
	} else if *rot != nil && (*rot).GracePeriod != nil {
		(*rot).GracePeriod = nil
	}
	return patch, nil
}

func (s *Server) rotateClient(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	c, err := s.getClient(ctx, r)
	if err != nil {
		s.fail(w, sess, err)
		return
	}
	if c.Spec.ClientSecretRef != nil {
		s.clientPageWith(w, r, sess, http.StatusConflict, nil, fmt.Sprintf("This client takes its secret from Secret %s: put the new secret there instead; the operator rotates to it.", c.Spec.ClientSecretRef.Name))
		return
	}
	patch, err := rotatePatch(c, &c.Spec.Rotation, r.PostForm.Get("grace"))
	if err != nil {
		s.renderStatus(w, http.StatusBadRequest, "Bad request", "Choose a grace period from the list.")
		return
	}
	if err := s.c.Patch(ctx, c, patch, client.FieldOwner(fieldManager)); err != nil {
		s.fail(w, sess, err)
		return
	}
	s.logf("rotated the secret of ApiClient %s/%s", c.Namespace, c.Name)
	http.Redirect(w, r, clientURL(c.Namespace, c.Name)+"?notice="+url.QueryEscape("Rotation requested: the operator issues a new secret; Reveal shows it once it is ready."), http.StatusSeeOther)
}

// confirmView is a confirmation page naming what is about to go.
type confirmView struct {
	Question, Explanation, Action, Button, Back string
	Blocked                                     string
}

func (s *Server) revokeConfirm(w http.ResponseWriter, r *http.Request, sess *session) {
	c, err := s.getClient(r.Context(), r)
	if err != nil {
		s.fail(w, sess, err)
		return
	}
	name := c.Name
	if c.Spec.DisplayName != "" {
		name = c.Spec.DisplayName + " (" + c.Name + ")"
	}
	v := &confirmView{
		Question:    fmt.Sprintf("Revoke API client %s?", name),
		Explanation: fmt.Sprintf("Client %s, its secret and every credential issued to it stop working at once. This cannot be undone.", clientID(c)),
		Action:      clientURL(c.Namespace, c.Name) + "/revoke", Button: "Revoke " + c.Name, Back: clientURL(c.Namespace, c.Name),
	}
	if c.Spec.DeletionPolicy == latchkeyv1alpha1.DeletionPolicyRequireInactive && c.IsActive() {
		v.Blocked = "This client must be deactivated before it can be revoked (its deletion policy is RequireInactive). Deactivate it first."
	}
	s.render(w, http.StatusOK, "confirm", page{Title: v.Question, CSRF: sess.csrf, Namespace: c.Namespace, Data: v})
}

func (s *Server) revokeClient(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	c, err := s.getClient(ctx, r)
	if err != nil {
		s.fail(w, sess, err)
		return
	}
	if c.Spec.DeletionPolicy == latchkeyv1alpha1.DeletionPolicyRequireInactive && c.IsActive() {
		s.clientPageWith(w, r, sess, http.StatusConflict, nil, "Deactivate this client before revoking it (its deletion policy is RequireInactive).")
		return
	}
	uid := c.UID
	if err := s.c.Delete(ctx, c, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		s.fail(w, sess, err)
		return
	}
	s.logf("deleted ApiClient %s/%s", c.Namespace, c.Name)
	http.Redirect(w, r, "/clients?namespace="+url.QueryEscape(c.Namespace), http.StatusSeeOther)
}

// credentialRow is one line of a client's credentials.
type credentialRow struct {
	Name, Description, Type, TokenID, Expires, LastUsed, Status string
	Expired                                                     bool
	RemoveURL, RotateURL                                        string
}

type credentialsView struct {
	Client   *clientView
	Rows     []credentialRow
	Created  *shownSecret
	Errors   map[string][]string
	Form     credentialForm
	Lifetime []lifetimeOption
}

type credentialForm struct {
	Description, Type, Lifetime, Date string
}

type lifetimeOption struct {
	Value, Label string
	Selected     bool
}

// lifetimes are the New credential form's choices, as Kallithea offers.
var lifetimes = []struct {
	value, label string
	d            time.Duration
}{
	{"1h", "1 hour", time.Hour}, {"24h", "1 day", 24 * time.Hour}, {"168h", "7 days", 7 * 24 * time.Hour},
	{"720h", "30 days", 30 * 24 * time.Hour}, {"2160h", "90 days", 90 * 24 * time.Hour}, {"never", "Never", 0}, {"date", "Until a date", 0},
}

func grantStatus(now time.Time, g *latchkeyv1alpha1.CredentialGrant) string {
	if exp := g.Status.ExpiresAt; exp == nil {
		exp = g.Spec.ExpiresAt
		if exp != nil && !exp.After(now) {
			return "Expired"
		}
	} else if !exp.After(now) {
		return "Expired"
	}
	if c := meta.FindStatusCondition(g.Status.Conditions, latchkeyv1alpha1.ConditionExpired); c != nil && c.Status == metav1.ConditionTrue {
		return "Expired"
	}
	if c := meta.FindStatusCondition(g.Status.Conditions, latchkeyv1alpha1.ConditionRevoked); c != nil && c.Status == metav1.ConditionTrue {
		return "Revoked"
	}
	if g.DeletionTimestamp != nil {
		return "Being removed"
	}
	text, _ := readiness(g.Status.Conditions)
	if text == "Ready" {
		return "Active"
	}
	return text
}

func (s *Server) credentialsPageWith(w http.ResponseWriter, r *http.Request, sess *session, code int, mod func(*credentialsView), notice string) {
	ctx := r.Context()
	c, err := s.getClient(ctx, r)
	if err != nil {
		s.fail(w, sess, err)
		return
	}
	grants := &latchkeyv1alpha1.CredentialGrantList{}
	if err := s.c.List(ctx, grants, client.InNamespace(c.Namespace)); err != nil {
		s.fail(w, sess, err)
		return
	}
	now := s.opts.Now()
	v := &credentialsView{Client: s.viewClient(ctx, c), Form: credentialForm{Type: "bearer", Lifetime: "24h"}}
	base := clientURL(c.Namespace, c.Name) + "/credentials/"
	items := grants.Items
	sort.Slice(items, func(i, j int) bool {
		if !items[i].CreationTimestamp.Equal(&items[j].CreationTimestamp) {
			return items[i].CreationTimestamp.Before(&items[j].CreationTimestamp)
		}
		return items[i].Name < items[j].Name
	})
	for i := range items {
		g := &items[i]
		if g.Spec.ClientName != c.Name {
			continue
		}
		exp := g.Status.ExpiresAt
		if exp == nil {
			exp = g.Spec.ExpiresAt
		}
		text, expired := expiry(now, exp)
		v.Rows = append(v.Rows, credentialRow{
			Name: g.Name, Description: g.Spec.Description, Type: string(g.EffectiveType()), TokenID: g.Status.TokenID,
			Expires: text, Expired: expired, LastUsed: lastUsed(now, g.Status.UsageStatus), Status: grantStatus(now, g),
			RemoveURL: base + url.PathEscape(g.Name) + "/remove", RotateURL: base + url.PathEscape(g.Name) + "/rotate",
		})
	}
	if mod != nil {
		mod(v)
	}
	for _, l := range lifetimes {
		v.Lifetime = append(v.Lifetime, lifetimeOption{Value: l.value, Label: l.label, Selected: l.value == v.Form.Lifetime})
	}
	s.render(w, code, "credentials", page{Title: "Credentials of " + c.Name, CSRF: sess.csrf, Namespace: c.Namespace, Notice: notice,
		Live: clientURL(c.Namespace, c.Name) + "/credentials", Events: eventsURL(c.Namespace), Data: v})
}

func (s *Server) credentialsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	var created *shownSecret
	if key := r.URL.Query().Get("created"); key != "" {
		if v, ok := s.takeFlash(sess, r.PathValue("ns")+"/"+key); ok {
			created = &v
		}
	}
	s.credentialsPageWith(w, r, sess, http.StatusOK, func(v *credentialsView) { v.Created = created }, r.URL.Query().Get("notice"))
}

// parseLifetime turns the form's lifetime (and date) into an expiry.
func parseLifetime(now time.Time, lifetime, date string) (*metav1.Time, error) {
	if lifetime == "never" {
		return nil, nil
	}
	if lifetime == "date" {
		t, err := time.Parse("2006-01-02", date)
		if err != nil {
			return nil, errors.New("give the expiry date as YYYY-MM-DD")
		}
		return &metav1.Time{Time: t.UTC()}, nil
	}
	for _, l := range lifetimes {
		if l.value == lifetime && l.d > 0 {
			return &metav1.Time{Time: now.Add(l.d).UTC().Truncate(time.Second)}, nil
		}
	}
	return nil, errors.New("choose a lifetime from the list")
}

func (s *Server) createCredential(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	c, err := s.getClient(ctx, r)
	if err != nil {
		s.fail(w, sess, err)
		return
	}
	form := credentialForm{Description: strings.TrimSpace(r.PostForm.Get("description")), Type: r.PostForm.Get("type"),
		Lifetime: r.PostForm.Get("lifetime"), Date: r.PostForm.Get("date")}
	errs := map[string][]string{}
	switch latchkeyv1alpha1.CredentialType(form.Type) {
	case latchkeyv1alpha1.CredentialTypeBearer, latchkeyv1alpha1.CredentialTypeKeyAuth, latchkeyv1alpha1.CredentialTypeBasicAuth:
	default:
		errs["type"] = append(errs["type"], "Choose a type: bearer, key-auth or basic-auth.")
	}
	exp, err := parseLifetime(s.opts.Now(), form.Lifetime, form.Date)
	if err != nil {
		errs["lifetime"] = append(errs["lifetime"], err.Error())
	}
	again := func(code int, errs map[string][]string, notice string) {
		s.credentialsPageWith(w, r, sess, code, func(v *credentialsView) { v.Form, v.Errors = form, errs }, notice)
	}
	if len(errs) > 0 {
		again(http.StatusUnprocessableEntity, errs, "")
		return
	}
	g := &latchkeyv1alpha1.CredentialGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: c.Namespace, GenerateName: strings.TrimSuffix(truncate(c.Name, 200), "-") + "-"},
		Spec: latchkeyv1alpha1.CredentialGrantSpec{ClientName: c.Name, Description: form.Description,
			Type: latchkeyv1alpha1.CredentialType(form.Type), ExpiresAt: exp},
	}
	if err := s.c.Create(ctx, g, client.FieldOwner(fieldManager)); err != nil {
		if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			again(http.StatusUnprocessableEntity, fieldErrors(err, map[string]string{"description": "description", "type": "type", "expiresAt": "lifetime"}), "")
			return
		}
		s.fail(w, sess, err)
		return
	}
	s.logf("created CredentialGrant %s/%s", g.Namespace, g.Name)
	shown, err := s.waitGrantSecret(ctx, types.NamespacedName{Namespace: g.Namespace, Name: g.Name}, "")
	if err != nil {
		code, prob := explain(err)
		if !apierrors.IsForbidden(err) && !isAPIError(err) {
			code, prob = http.StatusGatewayTimeout, &problem{Title: "Not issued yet", Detail: err.Error()}
		}
		s.credentialsPageWith(w, r, sess, code, nil, prob.Title+": "+prob.Detail)
		return
	}
	s.putFlash(sess, g.Namespace+"/"+g.Name, shown)
	http.Redirect(w, r, clientURL(c.Namespace, c.Name)+"/credentials?created="+url.QueryEscape(g.Name), http.StatusSeeOther)
}

func isAPIError(err error) bool {
	var status apierrors.APIStatus
	return errors.As(err, &status)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// waitGrantSecret waits until the grant is issued with a token id other
// than old, then reads its token from the consumer Secret.
func (s *Server) waitGrantSecret(ctx context.Context, key types.NamespacedName, old string) (shownSecret, error) {
	deadline := time.Now().Add(s.opts.Timeout)
	for {
		g := &latchkeyv1alpha1.CredentialGrant{}
		if err := s.c.Get(ctx, key, g); err != nil {
			return shownSecret{}, err
		}
		ready := meta.FindStatusCondition(g.Status.Conditions, latchkeyv1alpha1.ConditionReady)
		if g.Status.TokenID != "" && g.Status.TokenID != old && g.Status.SecretName != "" && ready != nil &&
			ready.ObservedGeneration == g.Generation && ready.Status == metav1.ConditionTrue {
			sec := &corev1.Secret{}
			err := s.c.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: g.Status.SecretName}, sec)
			if err != nil && !apierrors.IsNotFound(err) {
				return shownSecret{}, err
			}
			if err == nil && sec.Annotations[annotationTokenID] == g.Status.TokenID {
				return grantSecret(g, sec), nil
			}
		}
		if time.Now().After(deadline) {
			why := "the operator has not reported on it yet: is the Latchkey operator running?"
			if ready != nil {
				why = "Ready=" + string(ready.Status) + ": " + ready.Message
			}
			return shownSecret{}, fmt.Errorf("credential %s was created but its token is not issued after %s (%s); it appears in the list when it is, and Rotate shows a new token", key.Name, s.opts.Timeout, why)
		}
		select {
		case <-ctx.Done():
			return shownSecret{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func grantSecret(g *latchkeyv1alpha1.CredentialGrant, sec *corev1.Secret) shownSecret {
	d := func(k string) string { return string(sec.Data[k]) }
	v := shownSecret{Title: "New credential " + g.Name}
	switch g.EffectiveType() {
	case latchkeyv1alpha1.CredentialTypeKeyAuth:
		v.Fields = append(v.Fields, secretField{Label: "Key ID", Value: d(keyKeyID), ID: "new-key-id"},
			secretField{Label: "Key secret", Value: d(keyKeySecret), ID: "new-key-secret"})
	case latchkeyv1alpha1.CredentialTypeBasicAuth:
		v.Fields = append(v.Fields, secretField{Label: "Username", Value: d(keyUsername), ID: "new-username"},
			secretField{Label: "Password", Value: d(keyPassword), ID: "new-password"})
	}
	if t := d(keyToken); t != "" {
		v.Fields = append([]secretField{{Label: "Token", Value: t, ID: "new-token"}}, v.Fields...)
	}
	return v
}

func (s *Server) getGrant(ctx context.Context, r *http.Request) (*latchkeyv1alpha1.CredentialGrant, error) {
	g := &latchkeyv1alpha1.CredentialGrant{}
	if err := s.c.Get(ctx, types.NamespacedName{Namespace: r.PathValue("ns"), Name: r.PathValue("grant")}, g); err != nil {
		return nil, err
	}
	if g.Spec.ClientName != r.PathValue("name") {
		return nil, apierrors.NewNotFound(latchkeyv1alpha1.GroupVersion.WithResource("credentialgrants").GroupResource(), r.PathValue("grant"))
	}
	return g, nil
}

func (s *Server) removeConfirm(w http.ResponseWriter, r *http.Request, sess *session) {
	g, err := s.getGrant(r.Context(), r)
	if err != nil {
		s.fail(w, sess, err)
		return
	}
	what := g.Name
	if g.Spec.Description != "" {
		what = fmt.Sprintf("%q (%s)", g.Spec.Description, g.Name)
	}
	back := clientURL(g.Namespace, g.Spec.ClientName) + "/credentials"
	v := &confirmView{
		Question:    "Remove credential " + what + "?",
		Explanation: fmt.Sprintf("Token %s stops working at once. This cannot be undone.", g.Status.TokenID),
		Action:      back + "/" + url.PathEscape(g.Name) + "/remove", Button: "Remove " + g.Name, Back: back,
	}
	s.render(w, http.StatusOK, "confirm", page{Title: v.Question, CSRF: sess.csrf, Namespace: g.Namespace, Data: v})
}

func (s *Server) removeCredential(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	g, err := s.getGrant(ctx, r)
	if err != nil {
		s.fail(w, sess, err)
		return
	}
	uid := g.UID
	if err := s.c.Delete(ctx, g, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		s.fail(w, sess, err)
		return
	}
	s.logf("deleted CredentialGrant %s/%s", g.Namespace, g.Name)
	http.Redirect(w, r, clientURL(g.Namespace, g.Spec.ClientName)+"/credentials?notice="+url.QueryEscape("Removed "+g.Name+": its token no longer works."), http.StatusSeeOther)
}

func (s *Server) rotateCredential(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	g, err := s.getGrant(ctx, r)
	if err != nil {
		s.fail(w, sess, err)
		return
	}
	old := g.Status.TokenID
	patch, err := rotatePatch(g, &g.Spec.Rotation, r.PostForm.Get("grace"))
	if err != nil {
		s.renderStatus(w, http.StatusBadRequest, "Bad request", "Choose a grace period from the list.")
		return
	}
	if err := s.c.Patch(ctx, g, patch, client.FieldOwner(fieldManager)); err != nil {
		s.fail(w, sess, err)
		return
	}
	s.logf("rotated CredentialGrant %s/%s", g.Namespace, g.Name)
	shown, err := s.waitGrantSecret(ctx, client.ObjectKeyFromObject(g), old)
	if err != nil {
		s.fail(w, sess, err)
		return
	}
	s.putFlash(sess, g.Namespace+"/"+g.Name, shown)
	http.Redirect(w, r, clientURL(g.Namespace, g.Spec.ClientName)+"/credentials?created="+url.QueryEscape(g.Name), http.StatusSeeOther)
}
