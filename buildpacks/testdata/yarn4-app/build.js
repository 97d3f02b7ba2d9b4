// Needs the dev dependency kleur, which the app does not get at run time.
require("kleur");
require("fs").writeFileSync("built.txt", "built with kleur\n");
