package plan

import "strings"

// ExpandRefs replaces $(NAME) in an image command with NAME's value in env, as sealos does
// before it runs ENTRYPOINT and CMD (the $(VAR) form of Kubernetes container commands), so
// Kubefiles written for it, e.g. CMD ["helm install app charts/app -n $(NAMESPACE)"], run
// the same here. $(NAME) for a NAME env lacks is left for the shell (a command
// substitution such as $(hostname)), and $$(NAME) is written as a literal $(NAME).
func ExpandRefs(cmd string, env map[string]string) string {
	if !strings.Contains(cmd, "$(") {
		return cmd
	}
	var b strings.Builder
	for i := 0; i < len(cmd); {
		rest := cmd[i:]
		if strings.HasPrefix(rest, "$$(") {
			if name, ok := refName(rest[1:]); ok {
				b.WriteString("$(" + name + ")")
				i += len(name) + 4
				continue
			}
		}
		if name, ok := refName(rest); ok {
			if v, set := env[name]; set {
				b.WriteString(v)
				i += len(name) + 3
				continue
			}
		}
		b.WriteByte(cmd[i])
		i++
	}
	return b.String()
}

// refName reads "$(NAME)" at the start of s, NAME an environment variable name.
func refName(s string) (string, bool) {
	if !strings.HasPrefix(s, "$(") {
		return "", false
	}
	end := strings.IndexByte(s, ')')
	if end < 3 {
		return "", false
	}
	name := s[2:end]
	for i, c := range name {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return "", false
		}
	}
	return name, true
}
