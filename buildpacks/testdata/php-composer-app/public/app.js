console.log("composer app asset");
