export const message = "Built by Vite on hop3";
