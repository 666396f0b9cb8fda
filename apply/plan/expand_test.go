package plan

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestExpandRefs(t *testing.T) {
	env := map[string]string{"NAMESPACE": "apps", "REPLICAS": "3", "EMPTY": ""}
	for in, want := range map[string]string{
		"helm install app charts/app -n $(NAMESPACE) --set r=$(REPLICAS)": "helm install app charts/app -n apps --set r=3",
		"echo $(hostname) $(NOT_SET)":                                     "echo $(hostname) $(NOT_SET)",
		"echo $$(NAMESPACE) $$ $$(hostname)":                              "echo $(NAMESPACE) $$ $(hostname)",
		"echo [$(EMPTY)] ${NAMESPACE} $NAMESPACE":                         "echo [] ${NAMESPACE} $NAMESPACE",
		"echo $(1BAD) $( NAMESPACE) $(NAMESPACE":                          "echo $(1BAD) $( NAMESPACE) $(NAMESPACE",
		"no refs":                                                         "no refs",
	} {
		assert.Equal(t, want, ExpandRefs(in, env), in)
	}
}
