package hostclaim

import (
	"slices"
	"testing"
)

func TestFromConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantKey string
		want    []string
	}{
		{"none", map[string]string{"OTHER": "x.example.com"}, "", nil},
		{"blank HOST_NAME", map[string]string{"HOST_NAME": "  ", "NGINX_SERVER_NAME": "p.example.com"}, "NGINX_SERVER_NAME", []string{"p.example.com"}},
		{"HOST_NAME wins", map[string]string{"HOST_NAME": "h.example.com", "NGINX_SERVER_NAME": "p.example.com"}, "HOST_NAME", []string{"h.example.com"}},
		{"commas and blanks", map[string]string{"HOST_NAME": "a.example.com, b.example.com\tc.example.com\nd.example.com,,"}, "HOST_NAME",
			[]string{"a.example.com", "b.example.com", "c.example.com", "d.example.com"}},
		{"case, dot and repeats", map[string]string{"HOST_NAME": "A.Example.com. a.example.com"}, "HOST_NAME", []string{"a.example.com"}},
		{"nginx any host", map[string]string{"NGINX_SERVER_NAME": "_"}, "NGINX_SERVER_NAME", nil},
		{"any host among others", map[string]string{"NGINX_SERVER_NAME": "_ www.example.com"}, "NGINX_SERVER_NAME", []string{"www.example.com"}},
		{"unchecked", map[string]string{"HOST_NAME": "bad_host!"}, "HOST_NAME", []string{"bad_host!"}},
	}
	for _, tt := range tests {
		key, hosts := FromConfig(tt.env)
		if key != tt.wantKey || !slices.Equal(hosts, tt.want) {
			t.Errorf("%s: FromConfig = %q, %q; want %q, %q", tt.name, key, hosts, tt.wantKey, tt.want)
		}
	}
}

func TestSplit(t *testing.T) {
	if got, want := Split(" a.test,b.test \n\tc.test ,"), []string{"a.test", "b.test", "c.test"}; !slices.Equal(got, want) {
		t.Errorf("Split = %q, want %q", got, want)
	}
}
