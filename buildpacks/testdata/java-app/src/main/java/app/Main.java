package app;

import io.javalin.Javalin;
import java.nio.file.Files;

// A Javalin server on $PORT, built into one runnable jar by the shade plugin.
public class Main {
    public static void main(String[] args) {
        int port = Integer.parseInt(System.getenv("PORT"));
        String host = System.getenv().getOrDefault("HOST", "127.0.0.1");
        Javalin.create()
            .get("/", ctx -> ctx.result("Hello from a Java app on hop3 (Javalin)\n"))
            .get("/tmp", ctx -> ctx.result(Files.createTempFile("upload", ".part").getParent() + "\n"))
            .start(host, port);
    }
}
