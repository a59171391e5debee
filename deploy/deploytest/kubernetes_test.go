package deploytest

import (
	"bytes"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/drover-ml/drover/collector/server"
	"github.com/drover-ml/drover/shared/semconv"
)

// k8sTypes are the kinds the manifests may hold, by apiVersion and kind.
var k8sTypes = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"apps/v1/DaemonSet":                      func() any { return &appsv1.DaemonSet{} },
	"apps/v1/StatefulSet":                    func() any { return &appsv1.StatefulSet{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
}

// manifests are the decoded objects of deploy/kubernetes, by "Kind/name".
type manifests map[string]any

// splitYAML splits a multi-document YAML stream at its "---" lines and
// drops documents that hold only comments and blank lines.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	var cur []byte
	flush := func() {
		for _, line := range bytes.Split(cur, []byte("\n")) {
			l := bytes.TrimSpace(line)
			if len(l) > 0 && l[0] != '#' {
				docs = append(docs, cur)
				break
			}
		}
		cur = nil
	}
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if t := bytes.TrimRight(line, " \r\n"); string(t) == "---" {
			flush()
			continue
		}
		cur = append(cur, line...)
	}
	flush()
	return docs
}

func TestSplitYAML(t *testing.T) {
	docs := splitYAML([]byte("# head\n---\na: 1\n---\n# only a comment\n---\nb: |\n  x\n  ---x\n"))
	if len(docs) != 2 || string(docs[0]) != "a: 1\n" || !strings.Contains(string(docs[1]), "---x") {
		t.Fatalf("splitYAML: %q", docs)
	}
}

// loadManifests decodes every document of every file in deploy/kubernetes
// strictly (unknown or duplicate fields are errors) into k8s.io/api types.
func loadManifests(t testing.TB) manifests {
	t.Helper()
	files, err := filepath.Glob(deployPath("kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes (%v)", err)
	}
	objs := manifests{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitYAML(b) {
			where := filepath.Base(f) + " document " + strconv.Itoa(i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			mk, ok := k8sTypes[tm.APIVersion+"/"+tm.Kind]
			if !ok {
				t.Fatalf("%s: %s %s is not a kind this test knows: add it to k8sTypes", where, tm.APIVersion, tm.Kind)
			}
			obj := mk()
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s: %s: %v", where, tm.Kind, err)
			}
			meta := metaOf(obj)
			if meta.Name == "" {
				t.Fatalf("%s: %s without a name", where, tm.Kind)
			}
			key := tm.Kind + "/" + meta.Name
			if _, dup := objs[key]; dup {
				t.Fatalf("%s: %s twice", where, key)
			}
			objs[key] = obj
		}
	}
	return objs
}

func metaOf(obj any) metav1.ObjectMeta {
	switch o := obj.(type) {
	case *corev1.Namespace:
		return o.ObjectMeta
	case *corev1.ConfigMap:
		return o.ObjectMeta
	case *corev1.Secret:
		return o.ObjectMeta
	case *corev1.Service:
		return o.ObjectMeta
	case *appsv1.Deployment:
		return o.ObjectMeta
	case *appsv1.DaemonSet:
		return o.ObjectMeta
	case *appsv1.StatefulSet:
		return o.ObjectMeta
	case *autoscalingv2.HorizontalPodAutoscaler:
		return o.ObjectMeta
	case *policyv1.PodDisruptionBudget:
		return o.ObjectMeta
	}
	panic("metaOf: unknown type")
}

// get returns the object Kind/name, or fails the test.
func get[T any](t testing.TB, m manifests, key string) T {
	t.Helper()
	o, ok := m[key].(T)
	if !ok {
		t.Fatalf("deploy/kubernetes: no %s", key)
	}
	return o
}

// file returns the content of a file a container sees at p, when it comes
// from a ConfigMap or Secret of the manifests.
func (m manifests) file(t testing.TB, spec corev1.PodSpec, c corev1.Container, p string) (string, bool) {
	t.Helper()
	for _, vm := range c.VolumeMounts {
		var key string
		switch {
		case vm.SubPath != "" && vm.MountPath == p:
			key = vm.SubPath
		case vm.SubPath == "" && path.Dir(p) == vm.MountPath:
			key = path.Base(p)
		default:
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != vm.Name {
				continue
			}
			var data map[string]string
			var items []corev1.KeyToPath
			switch {
			case v.ConfigMap != nil:
				cm, ok := m["ConfigMap/"+v.ConfigMap.Name].(*corev1.ConfigMap)
				if !ok {
					t.Fatalf("volume %s: no ConfigMap %s", v.Name, v.ConfigMap.Name)
				}
				data, items = cm.Data, v.ConfigMap.Items
			case v.Secret != nil:
				s, ok := m["Secret/"+v.Secret.SecretName].(*corev1.Secret)
				if !ok {
					t.Fatalf("volume %s: no Secret %s", v.Name, v.Secret.SecretName)
				}
				data, items = s.StringData, v.Secret.Items
				if v.Secret.DefaultMode != nil && *v.Secret.DefaultMode&0o040 == 0 {
					t.Errorf("volume %s: mode %o: the pods' group (fsGroup) cannot read it", v.Name, *v.Secret.DefaultMode)
				}
			default:
				return "", false
			}
			if len(items) > 0 {
				var found bool
				for _, it := range items {
					if it.Path == key {
						key, found = it.Key, true
					}
				}
				if !found {
					return "", false
				}
			}
			d, ok := data[key]
			return d, ok
		}
	}
	return "", false
}

// droverContainer is a container of a manifest that runs Drover's image.
type droverContainer struct {
	where string
	spec  corev1.PodSpec
	c     corev1.Container
	in    invocation
}

// secretRE matches what must not be in a ConfigMap: a Drover token, a
// tokens file's hash, a private key, a URL with a password.
var secretRE = regexp.MustCompile(`drover_[A-Za-z0-9_-]{43}|sha256: |PRIVATE KEY|://[^/\s@]*:[^/\s@]*@`)

var k8sVarRE = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// droverContainers checks every container of every workload of the
// manifests (security context, resources) and returns those that run
// drover-agent or drover-collector, with their arguments parsed against the
// binary's flags.
func droverContainers(t testing.TB, m manifests) []droverContainer {
	t.Helper()
	var out []droverContainer
	for _, key := range sortedKeys(m) {
		var spec corev1.PodSpec
		switch o := m[key].(type) {
		case *appsv1.Deployment:
			spec = o.Spec.Template.Spec
		case *appsv1.DaemonSet:
			spec = o.Spec.Template.Spec
		case *appsv1.StatefulSet:
			spec = o.Spec.Template.Spec
		default:
			continue
		}
		psc := spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
			psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: the pod needs runAsNonRoot, a non-zero runAsUser and the RuntimeDefault seccomp profile", key)
		}
		for _, c := range spec.Containers {
			where := key + " container " + c.Name
			sc := c.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("%s: needs allowPrivilegeEscalation: false and capabilities.drop [ALL]", where)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Errorf("%s: no cpu and memory requests", where)
			}
			image, _, _ := strings.Cut(c.Image, ":")
			file, ok := dockerfiles[image]
			if !ok {
				continue
			}
			if len(c.Command) > 0 {
				t.Errorf("%s: replaces the image's entrypoint", where)
			}
			env := map[string]bool{}
			for _, e := range c.Env {
				env[e.Name] = true
			}
			for _, a := range c.Args {
				for _, v := range k8sVarRE.FindAllStringSubmatch(a, -1) {
					if !env[v[1]] {
						t.Errorf("%s: %q uses $(%s), which the container's env does not define", where, a, v[1])
					}
				}
			}
			img := loadImage(t, file)
			in := parseArgs(t, where, append(slices.Clone(img.entrypoint), c.Args...))
			out = append(out, droverContainer{where: where, spec: spec, c: c, in: in})
		}
	}
	return out
}

// containerPort resolves a probe's or service's port (a number or a name)
// to the container's port.
func containerPort(t testing.TB, where string, c corev1.Container, p intstr.IntOrString) int {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	t.Fatalf("%s: no container port named %q", where, p.StrVal)
	return 0
}

func TestKubernetes(t *testing.T) {
	m := loadManifests(t)
	for key, o := range m {
		meta := metaOf(o)
		if _, isNS := o.(*corev1.Namespace); !isNS && meta.Namespace == "" {
			t.Errorf("%s: no namespace", key)
		}
	}
	get[*corev1.Namespace](t, m, "Namespace/drover")

	cs := droverContainers(t, m)
	kinds := map[string]int{}
	for _, dc := range cs {
		where, c, in := dc.where, dc.c, dc.in
		kinds[in.bin.name]++

		// Container ports: exactly what it listens on beyond loopback.
		var want, got []string
		for _, l := range in.listeners(t, where) {
			if !l.loopback {
				want = append(want, strconv.Itoa(l.port)+"/"+l.protocol)
			}
		}
		for _, p := range c.Ports {
			proto := strings.ToLower(string(p.Protocol))
			if proto == "" {
				proto = "tcp"
			}
			got = append(got, strconv.Itoa(int(p.ContainerPort))+"/"+proto)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: container ports %v, but it listens on %v", where, got, want)
		}

		// Probes: open health routes on the listener that serves them.
		for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
			if p == nil || p.HTTPGet == nil {
				t.Errorf("%s: no %s probe (httpGet)", where, name)
				continue
			}
			checkHealth(t, where+" "+name+"Probe", in, containerPort(t, where, c, p.HTTPGet.Port), p.HTTPGet.Path)
			if name == "readiness" && !strings.Contains(p.HTTPGet.Path, "ready") {
				t.Errorf("%s: readiness probe on %s: want the readiness route", where, p.HTTPGet.Path)
			}
			if name == "liveness" && strings.Contains(p.HTTPGet.Path, "ready") {
				t.Errorf("%s: liveness probe on %s: a dependency's outage would restart the pod", where, p.HTTPGet.Path)
			}
		}

		// Every file a flag names comes from a ConfigMap or Secret here.
		for _, flag := range []string{"config", "token-file", "gossip-key-file"} {
			for _, v := range in.values[flag] {
				if _, ok := m.file(t, dc.spec, c, v); !ok {
					t.Errorf("%s: --%s=%s: no ConfigMap or Secret key is mounted there", where, flag, v)
				}
			}
		}
		conf, ok := m.file(t, dc.spec, c, in.last("config"))
		if !ok {
			t.Fatalf("%s: no --config from a ConfigMap", where)
		}
		switch in.bin.name {
		case "drover-collector":
			checkK8sCollector(t, m, dc, parseCollectorConfig(t, where+" collector.yaml", []byte(conf)))
		case "drover-agent":
			checkK8sAgent(t, m, dc, []byte(conf))
		}
	}
	// The agent as a DaemonSet and as a sidecar, the collectors as a
	// StatefulSet.
	ds := get[*appsv1.DaemonSet](t, m, "DaemonSet/drover-agent")
	ss := get[*appsv1.StatefulSet](t, m, "StatefulSet/drover-collector")
	dep := get[*appsv1.Deployment](t, m, "Deployment/drover-serving")
	if kinds["drover-agent"] != 2 || kinds["drover-collector"] != 1 {
		t.Errorf("Drover containers %v: want the agent twice (DaemonSet, sidecar) and the collector once", kinds)
	}
	if ds.Spec.Template.Spec.Containers[0].Image != "drover-agent:latest" || len(dep.Spec.Template.Spec.Containers) < 2 {
		t.Error("the DaemonSet runs the agent, the serving Deployment the application and the agent")
	}

	// Gossip: a headless service, also for pods not ready, on the port
	// and protocols the collectors gossip on.
	hs := get[*corev1.Service](t, m, "Service/"+ss.Spec.ServiceName)
	if hs.Spec.ClusterIP != corev1.ClusterIPNone || !hs.Spec.PublishNotReadyAddresses {
		t.Errorf("Service/%s: want clusterIP None and publishNotReadyAddresses", hs.Name)
	}
	if ss.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Error("StatefulSet/drover-collector: podManagementPolicy should be Parallel (start order does not matter)")
	}

	// The HPA: the serving Deployment, on the agents' in-flight requests.
	hpa := get[*autoscalingv2.HorizontalPodAutoscaler](t, m, "HorizontalPodAutoscaler/drover-serving")
	if r := hpa.Spec.ScaleTargetRef; r.Kind != "Deployment" || r.Name != dep.Name || r.APIVersion != "apps/v1" {
		t.Errorf("HPA: scales %s %s, want Deployment %s", r.APIVersion, r.Kind, dep.Name)
	}
	metric := strings.ReplaceAll(semconv.MetricInFlight, ".", "_")
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "`"+semconv.MetricInFlight+"` | `"+metric+"`") {
		t.Errorf("docs/metrics.md does not give %s's Prometheus name as %s", semconv.MetricInFlight, metric)
	}
	if len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Type != autoscalingv2.PodsMetricSourceType ||
		hpa.Spec.Metrics[0].Pods.Metric.Name != metric || hpa.Spec.Metrics[0].Pods.Target.AverageValue == nil {
		t.Errorf("HPA: want one Pods metric %s with an averageValue target", metric)
	}
	tmpl := dep.Spec.Template
	var agentPort int
	for _, dc := range cs {
		if strings.HasPrefix(dc.where, "Deployment/drover-serving ") {
			agentPort = dc.in.port(t, dc.where, "http-addr")
		}
	}
	if tmpl.Annotations["prometheus.io/port"] != strconv.Itoa(agentPort) || tmpl.Annotations["prometheus.io/path"] != "/metrics" ||
		!healthRoutes["drover-agent"].open("/metrics") {
		t.Errorf("Deployment/drover-serving: Prometheus must scrape the agent's open /metrics on %d: %v", agentPort, tmpl.Annotations)
	}
	adapter := get[*corev1.ConfigMap](t, m, "ConfigMap/prometheus-adapter-drover")
	var rules struct {
		Rules []struct {
			SeriesQuery string `json:"seriesQuery"`
			Resources   struct {
				Overrides map[string]struct {
					Resource string `json:"resource"`
				} `json:"overrides"`
			} `json:"resources"`
			Name struct {
				Matches string `json:"matches"`
				As      string `json:"as"`
			} `json:"name"`
			MetricsQuery string `json:"metricsQuery"`
		} `json:"rules"`
	}
	if err := yaml.UnmarshalStrict([]byte(adapter.Data["config.yaml"]), &rules); err != nil || len(rules.Rules) != 1 {
		t.Fatalf("prometheus-adapter config: %v", err)
	}
	r := rules.Rules[0]
	if !strings.HasPrefix(r.SeriesQuery, metric+"{") || r.Name.As != metric || !regexp.MustCompile(r.Name.Matches).MatchString(metric) ||
		r.Resources.Overrides["pod"].Resource != "pod" || r.Resources.Overrides["namespace"].Resource != "namespace" ||
		!strings.Contains(r.MetricsQuery, "<<.Series>>") {
		t.Errorf("prometheus-adapter rule %+v: want %s per pod and namespace", r, metric)
	}

	// Secrets: tokens, keys and certificates, never in a ConfigMap.
	for _, s := range []string{"drover-gossip-key", "drover-tokens", "drover-agent-token", "drover-clickhouse", "drover-collector-tls"} {
		get[*corev1.Secret](t, m, "Secret/"+s)
	}
	if tls := get[*corev1.Secret](t, m, "Secret/drover-collector-tls"); tls.Type != corev1.SecretTypeTLS || tls.StringData["ca.crt"] == "" {
		t.Error("Secret/drover-collector-tls: want type kubernetes.io/tls with ca.crt")
	}
	for key, o := range m {
		if cm, ok := o.(*corev1.ConfigMap); ok {
			for k, v := range cm.Data {
				if secretRE.MatchString(v) {
					t.Errorf("%s %s: holds a token, hash, key or password: use a Secret", key, k)
				}
			}
		}
	}
}

// checkK8sCollector checks the collector's cluster flags, its mounts and
// the services that reach it.
func checkK8sCollector(t *testing.T, m manifests, dc droverContainer, cfg server.Config) {
	t.Helper()
	where, in := dc.where, dc.in
	ss := get[*appsv1.StatefulSet](t, m, "StatefulSet/drover-collector")
	gossip := in.port(t, where, "gossip-addr")
	wantJoin := ss.Spec.ServiceName + ".$(POD_NAMESPACE).svc.cluster.local:" + strconv.Itoa(gossip)
	if in.last("join") != wantJoin || in.last("node-name") != "$(POD_NAME)" || !strings.HasPrefix(in.last("gossip-addr"), "$(POD_IP):") {
		t.Errorf("%s: --join=%s --node-name=%s --gossip-addr=%s: want the headless service %s, the pod's name and IP",
			where, in.last("join"), in.last("node-name"), in.last("gossip-addr"), wantJoin)
	}
	key, ok := m.file(t, dc.spec, dc.c, in.last("gossip-key-file"))
	if !ok || key == "" {
		t.Errorf("%s: no gossip key", where)
	}
	for _, p := range []string{cfg.Auth.TokensFile, cfg.OTLP.TLS.CertFile, cfg.OTLP.TLS.KeyFile} {
		if _, ok := m.file(t, dc.spec, dc.c, p); p == "" || !ok {
			t.Errorf("%s: collector.yaml names %q, which no Secret mount provides", where, p)
		}
	}
	if u, err := url.Parse(cfg.Registry.BlobURL); err != nil || u.Scheme == "file" || u.Scheme == "" {
		t.Errorf("%s: registry.blob_url %q: a cluster needs an object store every collector reaches", where, cfg.Registry.BlobURL)
	}
	var dsn bool
	for _, e := range dc.c.Env {
		if e.Name == "CLICKHOUSE_DSN" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			s := get[*corev1.Secret](t, m, "Secret/"+e.ValueFrom.SecretKeyRef.Name)
			u, err := url.Parse(s.StringData[e.ValueFrom.SecretKeyRef.Key])
			dsn = err == nil && u.Scheme == "clickhouse" && in.last("clickhouse") == "$(CLICKHOUSE_DSN)"
		}
	}
	if !dsn {
		t.Errorf("%s: --clickhouse should come from a Secret's clickhouse:// DSN", where)
	}
	// Both services reach ports the container has, by name.
	for _, name := range []string{"drover-collector", ss.Spec.ServiceName} {
		svc := get[*corev1.Service](t, m, "Service/"+name)
		for _, p := range svc.Spec.Ports {
			got := containerPort(t, "Service/"+name, dc.c, p.TargetPort)
			if got != int(p.Port) {
				t.Errorf("Service/%s: port %d goes to container port %d", name, p.Port, got)
			}
		}
	}
}

// checkK8sAgent checks where an agent sends telemetry and which collectors
// it follows: the collectors' service, on the ports they listen on.
func checkK8sAgent(t *testing.T, m manifests, dc droverContainer, conf []byte) {
	t.Helper()
	where, in := dc.where, dc.in
	cfg := parseAgentConfig(t, where+" agent.yaml", conf)
	svc := get[*corev1.Service](t, m, "Service/drover-collector")
	collector := get[*appsv1.StatefulSet](t, m, "StatefulSet/drover-collector").Spec.Template.Spec.Containers[0]
	collIn := parseArgs(t, "collector", append(loadImage(t, dockerfiles["drover-collector"]).entrypoint, collector.Args...))
	host := svc.Name + "." + svc.Namespace + ".svc.cluster.local"
	// The service port that leads to a collector flag's port.
	servicePort := func(flag string) string {
		want := collIn.port(t, "collector", flag)
		for _, p := range svc.Spec.Ports {
			if containerPort(t, "Service/drover-collector", collector, p.TargetPort) == want {
				return strconv.Itoa(int(p.Port))
			}
		}
		t.Fatalf("Service/drover-collector: no port leads to the collector's --%s", flag)
		return ""
	}
	for _, s := range strings.Split(in.last("collector"), ",") {
		u, err := url.Parse(s)
		if err != nil || u.Hostname() != host || u.Port() != servicePort("admin-addr") {
			t.Errorf("%s: --collector %s: want %s on the admin port", where, s, host)
		}
	}
	h, p, err := net.SplitHostPort(cfg.Telemetry.Endpoint)
	if err != nil || h != host || p != servicePort("otlp-grpc-addr") || cfg.Telemetry.Protocol != "grpc" {
		t.Errorf("%s: telemetry.endpoint %s (%s): want %s on the OTLP gRPC port", where, cfg.Telemetry.Endpoint, cfg.Telemetry.Protocol, host)
	}
	if cfg.Telemetry.TLS == nil || cfg.Telemetry.TLS.CAFile == "" {
		t.Errorf("%s: the collectors' OTLP has TLS: telemetry.tls.ca_file is needed", where)
	} else if _, ok := m.file(t, dc.spec, dc.c, cfg.Telemetry.TLS.CAFile); !ok {
		t.Errorf("%s: telemetry.tls.ca_file %s: no Secret mount provides it", where, cfg.Telemetry.TLS.CAFile)
	}
	if cfg.Telemetry.TokenFile != in.last("token-file") {
		t.Errorf("%s: telemetry.token_file %q, --token-file %q: want the same agent token", where, cfg.Telemetry.TokenFile, in.last("token-file"))
	}
}
