<?php

require __DIR__ . '/../vendor/autoload.php';

echo (new App\Greeter())->greet('hop3'), "\n";
