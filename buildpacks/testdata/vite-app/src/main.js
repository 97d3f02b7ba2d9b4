import { message } from "./message.js";

document.querySelector("#app").textContent = message;
