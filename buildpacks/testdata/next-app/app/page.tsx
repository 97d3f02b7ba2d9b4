export const dynamic = "force-dynamic";

export default function Home() {
  return <p>Hello from Next.js on hop3</p>;
}
