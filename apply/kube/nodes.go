package kube

import (
	"encoding/json"
	"fmt"
)

// Node is what the engine reads of a Node object.
type Node struct {
	Name    string
	IP      string // InternalIP
	PodCIDR string
	Ready   bool
}

// ParseNodes reads `kubectl get nodes -o json`.
func ParseNodes(b []byte) ([]Node, error) {
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				PodCIDR string `json:"podCIDR"`
			} `json:"spec"`
			Status struct {
				Addresses []struct {
					Type    string `json:"type"`
					Address string `json:"address"`
				} `json:"addresses"`
				Conditions []struct {
					Type   string `json:"type"`
					Status string `json:"status"`
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("read the node list: %w", err)
	}
	var out []Node
	for _, it := range list.Items {
		n := Node{Name: it.Metadata.Name, PodCIDR: it.Spec.PodCIDR}
		for _, a := range it.Status.Addresses {
			if a.Type == "InternalIP" && n.IP == "" {
				n.IP = a.Address
			}
		}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" {
				n.Ready = c.Status == "True"
			}
		}
		out = append(out, n)
	}
	return out, nil
}

// ByIP returns the node whose InternalIP is ip.
func ByIP(nodes []Node, ip string) (Node, bool) {
	for _, n := range nodes {
		if n.IP == ip {
			return n, true
		}
	}
	return Node{}, false
}
