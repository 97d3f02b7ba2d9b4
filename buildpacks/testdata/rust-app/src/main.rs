// A web server on $PORT with std alone, and one crate from crates.io.
use std::io::{Read, Write};
use std::net::TcpListener;

fn main() {
    let port = std::env::var("PORT").expect("PORT is set");
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_string());
    let listener = TcpListener::bind(format!("{host}:{port}")).expect("bind");
    let mut served: u64 = 0;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf);
        served += 1;
        let mut n = itoa::Buffer::new();
        let body = format!("Hello from a Rust app on hop3, request {}\n", n.format(served));
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            body.len(),
            body
        );
    }
}
