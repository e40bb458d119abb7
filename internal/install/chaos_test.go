package install

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	latchkeyv1alpha1 "github.com/latchkey-dev/latchkey/api/v1alpha1"
	"github.com/latchkey-dev/latchkey/internal/backing"
)

// chaosSize is the size of a fault test: its short form in `make test`, its
// long form in `make chaos` (LATCHKEY_CHAOS=1), or what LATCHKEY_CHAOS_<NAME>
// says.
func chaosSize(name string, short, long int) int {
	if v, err := strconv.Atoi(os.Getenv("LATCHKEY_CHAOS_" + name)); err == nil && v > 0 {
		return v
	}
	if os.Getenv("LATCHKEY_CHAOS") != "" {
		return long
	}
	return short
}

// Issue 14, faults: the manager is killed with SIGKILL at random moments
// while credentials converge (no graceful shutdown, no lease release: a
// node dying, the OOM killer) and started again each time. At the end every
// credential is Ready, no consumer Secret ever held a second secret (nothing
// regenerated), every owner has exactly one backing token, the one its
// Secret holds (no orphan, no two live tokens), and no Reissued or
// SecretTampered warning was emitted. `make test` runs 40 clients with a
// grant each and 5 kills; `make chaos` 250 pairs (500 credentials) and 20.
func TestKillNineWhileConverging(t *testing.T) {
	pairs, kills := chaosSize("PAIRS", 40, 250), chaosSize("KILLS", 5, 20)
	ns, apps := "lk-kill", "apps-kill"
	ensureNamespace(t, ns)
	ensureNamespace(t, apps)
	objs := helmTemplate(t, ns)
	args, podNS := managerArgs(t, objs, "latchkey")
	tokenNS := flagValue(t, args, "--token-namespace")
	ensureNamespace(t, tokenNS)
	kubeconfig := writeKubeconfig(t, env.Config)
	// One replica, restarted at once: leader election would only add its
	// lease wait to every restart (TestLeaderFailover covers it).
	extra := []string{"--enable-webhooks=false", "--leader-elect=false", "--verifier-bind-address=0"}

	// Every token id each consumer Secret ever held, from a watch.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := map[string][]string{}
	var mu sync.Mutex
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().Secrets(apps).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var watching sync.WaitGroup
	watching.Go(func() {
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*corev1.Secret)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			id := s.Annotations["latchkey.dev/token-id"]
			mu.Lock()
			if ids := seen[s.Name]; id != "" && (len(ids) == 0 || ids[len(ids)-1] != id) {
				seen[s.Name] = append(ids, id)
			}
			mu.Unlock()
		}
	})
	defer func() { w.Stop(); watching.Wait() }()

	p := startManager(t, "kill-0", args, podNS, kubeconfig, extra...)
	// Creating lasts about as long as the kills, so they fall while
	// credentials are being issued.
	pace := time.Duration(kills) * 1100 * time.Millisecond / time.Duration(pairs)
	var creating sync.WaitGroup
	creating.Go(func() {
		for i := range pairs {
			c := &latchkeyv1alpha1.ApiClient{
				ObjectMeta: metav1.ObjectMeta{Namespace: apps, Name: fmt.Sprintf("c%03d", i)},
				Spec:       latchkeyv1alpha1.ApiClientSpec{Scopes: []string{"blogs"}, Permissions: []string{"blogs.read"}, Tenant: "2"},
			}
			g := &latchkeyv1alpha1.CredentialGrant{
				ObjectMeta: metav1.ObjectMeta{Namespace: apps, Name: fmt.Sprintf("g%03d", i)},
				Spec:       latchkeyv1alpha1.CredentialGrantSpec{ClientName: c.Name},
			}
			for _, o := range []client.Object{c, g} {
				if err := env.Client.Create(ctx, o); err != nil {
					t.Error(err)
					return
				}
			}
			time.Sleep(time.Duration(rand.Int64N(int64(2 * pace))))
		}
	})
	for k := range kills {
		// A random moment: mostly while issuing, sometimes at start-up.
		time.Sleep(time.Duration(200+rand.IntN(1800)) * time.Millisecond)
		p.kill()
		<-p.done
		p = startManager(t, fmt.Sprintf("kill-%d", k+1), args, podNS, kubeconfig, extra...)
	}
	creating.Wait()
	start := time.Now()
	waitAllReady(t, apps, 2*pairs, 5*time.Minute, p)
	t.Logf("%d credentials Ready %s after the last of %d kills", 2*pairs, time.Since(start).Round(100*time.Millisecond), kills)
	time.Sleep(2 * time.Second) // let the watch deliver the last writes

	var problems []string
	mu.Lock()
	for name, ids := range seen {
		if len(ids) > 1 {
			problems = append(problems, fmt.Sprintf("Secret %s held %d secrets: token ids %v (regenerated)", name, len(ids), ids))
		}
	}
	mu.Unlock()

	// Each owner: one backing token, the one its consumer Secret holds.
	var secrets corev1.SecretList
	if err := env.Client.List(ctx, &secrets, client.InNamespace(apps)); err != nil {
		t.Fatal(err)
	}
	holds := map[string]string{} // owner UID -> token id in its Secret
	for _, s := range secrets.Items {
		for _, ref := range s.OwnerReferences {
			if ref.Controller != nil && *ref.Controller {
				holds[string(ref.UID)] = s.Annotations["latchkey.dev/token-id"]
			}
		}
	}
	var tokens corev1.SecretList
	if err := env.Client.List(ctx, &tokens, client.InNamespace(tokenNS)); err != nil {
		t.Fatal(err)
	}
	perOwner := map[string][]string{}
	for i := range tokens.Items {
		if tokens.Items[i].Type != backing.SecretType {
			continue
		}
		bt, err := backing.FromSecret(&tokens.Items[i])
		if err != nil {
			problems = append(problems, fmt.Sprintf("unreadable backing token %s: %v", tokens.Items[i].Name, err))
			continue
		}
		perOwner[string(bt.OwnerUID)] = append(perOwner[string(bt.OwnerUID)], bt.ID)
	}
	for owner, ids := range perOwner {
		switch want, ok := holds[owner]; {
		case !ok:
			problems = append(problems, fmt.Sprintf("orphaned backing tokens %v: owner %s has no consumer Secret", ids, owner))
		case len(ids) != 1:
			problems = append(problems, fmt.Sprintf("owner %s has %d live backing tokens %v", owner, len(ids), ids))
		case ids[0] != want:
			problems = append(problems, fmt.Sprintf("owner %s: backing token %s, but its Secret holds %s", owner, ids[0], want))
		}
	}
	if len(holds) != 2*pairs || len(perOwner) != 2*pairs {
		problems = append(problems, fmt.Sprintf("%d consumer Secrets and %d owners with backing tokens, want %d each", len(holds), len(perOwner), 2*pairs))
	}
	var events corev1.EventList
	if err := env.Client.List(ctx, &events, client.InNamespace(apps)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Type == corev1.EventTypeWarning && (e.Reason == "Reissued" || e.Reason == "SecretTampered") {
			problems = append(problems, fmt.Sprintf("Event %s %s on %s: %s", e.Type, e.Reason, e.InvolvedObject.Name, e.Message))
		}
	}
	if len(problems) > 0 {
		t.Fatalf("after %d kills -9 while %d credentials converged:\n%s", kills, 2*pairs, strings.Join(problems, "\n"))
	}
	if err := p.exitedEarly(); err != nil {
		t.Fatal(err)
	}
}
