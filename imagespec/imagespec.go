// Package imagespec is the cluster-image contract: the labels, env keys and directory
// layout that tell the build, ship and run stages what an image is and how to use it.
// It is compatible with the images the sealos project publishes.
package imagespec

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Labels on the image config.
const (
	// LabelType says how the apply engine treats the image. Missing means application.
	LabelType = "sealos.io.type"
	// LabelVersion is the cluster-image format version; required on rootfs images.
	LabelVersion = "sealos.io.version"
	// LabelVersionV1Beta1 is the only format version there is so far.
	LabelVersionV1Beta1 = "v1beta1"

	// Script labels of rootfs images: the command the apply engine runs for each phase.
	// Absent labels default to "bash <label>.sh" in scripts/, skipped when the file is absent.
	LabelInit          = "init"
	LabelClean         = "clean"
	LabelCheck         = "check"
	LabelInitRegistry  = "init-registry"
	LabelCleanRegistry = "clean-registry"
)

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

// Types lists the valid types in the order they are documented.
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

// TypeOf returns the type the labels declare; a missing label means Application.
func TypeOf(labels map[string]string) (Type, error) {
	v, ok := labels[LabelType]
	if !ok || v == "" {
		return Application, nil
	}
	t := Type(v)
	for _, known := range Types {
		if t == known {
			return t, nil
		}
	}
	return "", fmt.Errorf("unknown %s %q: want one of %s", LabelType, v, typeList())
}

func typeList() string {
	s := make([]string, len(Types))
	for i, t := range Types {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// ErrInvalid is wrapped by every validation error, so callers can tell bad images from
// I/O failures.
var ErrInvalid = errors.New("invalid cluster image")

// Validate checks the labels of an image config against the contract.
func Validate(labels map[string]string) error {
	t, err := TypeOf(labels)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if v, ok := labels[LabelVersion]; ok && v != LabelVersionV1Beta1 {
		return fmt.Errorf("%w: unsupported %s %q: want %s", ErrInvalid, LabelVersion, v, LabelVersionV1Beta1)
	}
	if t == Rootfs && labels[LabelVersion] == "" {
		return fmt.Errorf("%w: a %s image needs the label %s=%s", ErrInvalid, Rootfs, LabelVersion, LabelVersionV1Beta1)
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
