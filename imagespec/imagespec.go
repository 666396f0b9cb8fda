// Package imagespec is the cluster-image contract: the labels, env keys and directory
// layout that tell the build, ship and run stages what an image is and how to use it.
// It is compatible with the images the sealos project publishes.
package imagespec

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Labels on the image config.
const (
	// LabelType says how the apply engine treats the image. Missing means application.
	LabelType = "sealos.io.type"
	// LabelTypeV2 is the type label some sealos images carry instead of LabelType (sealos
	// reads both, LabelType first).
	LabelTypeV2 = "apps.sealos.io/type"
	// LabelVersion is the cluster-image format version; required on rootfs images.
	LabelVersion = "sealos.io.version"
	// LabelVersionV2 is the version label read when LabelVersion is absent.
	LabelVersionV2 = "apps.sealos.io/version"
	// LabelVersionV1Beta1 and LabelVersionV1Beta2 are the format versions sealos runs.
	LabelVersionV1Beta1 = "v1beta1"
	LabelVersionV1Beta2 = "v1beta2"

	// Script labels of rootfs images: the command the apply engine runs for each phase.
	// Absent labels default to "bash <label>.sh" in scripts/, skipped when the file is absent.
	LabelInit          = "init"
	LabelClean         = "clean"
	LabelCheck         = "check"
	LabelInitRegistry  = "init-registry"
	LabelCleanRegistry = "clean-registry"
)

// TypeLabels and VersionLabels are the keys the type and the version are read from, in
// order: the first one set wins, as in sealos.
var (
	TypeLabels    = []string{LabelType, LabelTypeV2}
	VersionLabels = []string{LabelVersion, LabelVersionV2}
)

// Versions lists the format versions a rootfs image may declare.
var Versions = []string{LabelVersionV1Beta1, LabelVersionV1Beta2}

// AnnotationImages is the manifest annotation that lists, comma separated, the container
// images saved under registry/ when the cluster image was built.
const AnnotationImages = "sealos.io.images"

// Type is the kind of a cluster image.
type Type string

const (
	// Rootfs images carry a cluster's base (binaries, scripts, templates) to every host.
	Rootfs Type = "rootfs"
	// Application images carry charts and manifests, run on the first master only.
	Application Type = "application"
	// Patch images are overlaid on the rootfs of every host, after the rootfs images.
	Patch Type = "patch"
)

// Types lists the types the apply engine knows, in the order they are documented.
var Types = []Type{Rootfs, Application, Patch}

// Env keys with defaults on rootfs images.
const (
	EnvRegistryDomain   = "registryDomain"
	EnvRegistryPort     = "registryPort"
	EnvRegistryUsername = "registryUsername"
	EnvRegistryPassword = "registryPassword"
	EnvRegistryData     = "registryData"
)

// RootfsEnvDefaults are set on rootfs images unless the Kubefile sets them itself.
var RootfsEnvDefaults = map[string]string{
	EnvRegistryDomain:   "sealos.hub",
	EnvRegistryPort:     "5000",
	EnvRegistryUsername: "admin",
	EnvRegistryData:     "/var/lib/registry",
}

// Directories of the cluster-image layout, relative to the image root.
const (
	DirBin       = "bin"
	DirEtc       = "etc"
	DirScripts   = "scripts"
	DirCharts    = "charts"
	DirManifests = "manifests"
	DirImageList = "images/shim"
	DirRegistry  = "registry"
	DirOpt       = "opt"
)

// TemplateSuffix marks files the apply engine renders with the image env.
const TemplateSuffix = ".tmpl"

// lookup returns the value of the first of keys set in labels, and that key.
func lookup(labels map[string]string, keys []string) (value, key string) {
	for _, k := range keys {
		if v, ok := labels[k]; ok {
			return v, k
		}
	}
	return "", keys[0]
}

// TypeLabel returns the type as the labels declare it (LabelType, else LabelTypeV2; ""
// when neither is set) and the label it came from.
func TypeLabel(labels map[string]string) (value, label string) {
	return lookup(labels, TypeLabels)
}

// VersionLabel returns the declared format version (LabelVersion, else LabelVersionV2)
// and the label it came from.
func VersionLabel(labels map[string]string) (value, label string) {
	return lookup(labels, VersionLabels)
}

// TypeOf returns how the apply engine treats an image: the declared type when it is
// rootfs or patch, Application otherwise (missing, empty, "application", or a type this
// engine does not know, such as "addons", which Check warns about).
func TypeOf(labels map[string]string) Type {
	v, _ := TypeLabel(labels)
	switch t := Type(v); t {
	case Rootfs, Patch:
		return t
	}
	return Application
}

func known(t Type) bool {
	for _, k := range Types {
		if t == k {
			return true
		}
	}
	return false
}

func typeList() string {
	s := make([]string, len(Types))
	for i, t := range Types {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// Warning is something about an image's labels that sealos accepts but that probably
// is not what the author meant; Label names the label concerned.
type Warning struct {
	Label   string
	Message string
}

func (w Warning) String() string { return w.Message }

// Check returns the warnings for an image's labels. Nothing is refused at build time:
// sealos builds any labels (its builder does not read them), so Check only warns where
// the image will behave differently from what its labels seem to say, or where sealos run
// will refuse it (see Validate).
func Check(labels map[string]string) []Warning {
	var out []Warning
	tv, tl := TypeLabel(labels)
	if tl == LabelType {
		if v2, ok := labels[LabelTypeV2]; ok && v2 != tv {
			out = append(out, Warning{LabelTypeV2, fmt.Sprintf("%s=%q and %s=%q disagree: %s wins", LabelType, tv, LabelTypeV2, v2, LabelType)})
		}
	}
	if tv != "" && !known(Type(tv)) {
		out = append(out, Warning{tl, fmt.Sprintf("%s %q is not one of %s: the image is run as an application (on the first master only)", tl, tv, typeList())})
	}
	vv, vl := VersionLabel(labels)
	switch {
	case Type(tv) == Rootfs:
		if err := Validate(labels); err != nil {
			at := vl
			if vv == "" {
				at = tl // the missing label has no place; the type label has
			}
			out = append(out, Warning{at, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ") + "; 'sealos run' refuses such an image"})
		}
	case vv != "" && !slices.Contains(Versions, vv):
		out = append(out, Warning{vl, fmt.Sprintf("%s %q is not one of %s (it is read only on rootfs images)", vl, vv, strings.Join(Versions, ", "))})
	}
	return out
}

// ErrInvalid is wrapped by every validation error, so callers can tell bad images from
// I/O failures.
var ErrInvalid = errors.New("invalid cluster image")

// Validate refuses what sealos refuses to run: a rootfs image whose format version
// (LabelVersion, else LabelVersionV2) is missing or not one of Versions. Every other
// label set is accepted (Check warns about the doubtful ones).
func Validate(labels map[string]string) error {
	if tv, _ := TypeLabel(labels); Type(tv) != Rootfs {
		return nil
	}
	vv, vl := VersionLabel(labels)
	if vv == "" {
		return fmt.Errorf("%w: a %s image needs the label %s=%s (or %s)", ErrInvalid, Rootfs, LabelVersion, LabelVersionV1Beta1, LabelVersionV1Beta2)
	}
	if !slices.Contains(Versions, vv) {
		return fmt.Errorf("%w: unsupported %s %q on a %s image: want one of %s", ErrInvalid, vl, vv, Rootfs, strings.Join(Versions, ", "))
	}
	return nil
}

// ScriptCommand returns the command for a script label: the label's value, or the default
// "bash <label>.sh" when the label is absent. ok is false when neither applies.
func ScriptCommand(labels map[string]string, label string) (cmd string, isDefault bool) {
	if v, ok := labels[label]; ok {
		return v, false
	}
	return "bash " + label + ".sh", true
}

// EnvWithDefaults returns env (KEY=VALUE items) with the rootfs defaults added for keys it
// does not set, for rootfs images; other types are returned unchanged.
func EnvWithDefaults(t Type, env []string) []string {
	if t != Rootfs {
		return env
	}
	set := map[string]bool{}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	keys := make([]string, 0, len(RootfsEnvDefaults))
	for k := range RootfsEnvDefaults {
		if !set[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := append([]string(nil), env...)
	for _, k := range keys {
		out = append(out, k+"="+RootfsEnvDefaults[k])
	}
	return out
}

// EnvMap turns KEY=VALUE items into a map; later items win.
func EnvMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
