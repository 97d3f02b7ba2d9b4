package app

import "testing"

func TestManagerURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		http, https string
		want        string
	}{
		{"plain default port", ":80", "", "http://web.example.com/"},
		{"plain other port", "127.0.0.1:8080", "", "http://web.example.com:8080/"},
		{"tls default port", ":80", ":443", "https://web.example.com/"},
		{"tls other port", "127.0.0.1:8080", "127.0.0.1:8443", "https://web.example.com:8443/"},
		{"tls, http port ignored", "127.0.0.1:8080", ":443", "https://web.example.com/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &Manager{cfg: Config{Domain: "example.com", PublicHTTPAddr: tc.http, PublicHTTPSAddr: tc.https}}
			if got := m.URL("web"); got != tc.want {
				t.Errorf("URL = %q, want %q", got, tc.want)
			}
		})
	}
}
