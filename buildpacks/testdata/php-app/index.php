<?php
// Every path that names no file comes here, as to a front controller.
$greeting = getenv('GREETING') ?: 'Hello';
echo $greeting, ' from PHP ', PHP_MAJOR_VERSION, ' on hop3 at ', $_SERVER['REQUEST_URI'], "\n";
