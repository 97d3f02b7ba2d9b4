<?php

namespace App;

final class Greeter
{
    public function greet(string $who): string
    {
        return "Hello, {$who}, from a Composer autoloader";
    }
}
